"""The machine description, the table and the JSON of a benchmark run."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.compare import speedup, verdict
from bench.measure import Result, as_dict


@dataclass
class Row:
    """durafn's figure for one shape and, with ``--compare-dbos``, DBOS's figure for it."""

    durafn: Result
    dbos: Result | None = None


def describe_machine() -> dict[str, Any]:
    """Architecture, CPU model (from /proc/cpuinfo when there is one), CPU count, Python."""
    cpu = platform.processor() or None
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = models[0] if models else cpu
    return {
        "machine": platform.machine(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }


def machine_line(machine: dict[str, Any]) -> str:
    """The machine description in one line."""
    cpu = f"{machine['cpu']}, " if machine["cpu"] else ""
    return f"{machine['machine']}, {cpu}{machine['cpu_count']} CPUs, {machine['python']}"


def table(rows: list[Row], compared: bool) -> list[str]:
    """The results as aligned text lines; with ``compared``, DBOS's figure and the ratio too."""
    width = max(len(row.durafn.shape) for row in rows)
    lines = []
    if compared:
        # each figure column: the value right-aligned in 10, a space, the unit in 8
        heads = (
            f"{'shape':<{width}}  {'durafn':>10}{'':9}  {'DBOS':>10}{'':9}  {'durafn vs DBOS':<14}"
        )
        lines.append(f"  {heads} detail")
    for row in rows:
        ours = row.durafn
        line = f"  {ours.shape:<{width}}  {ours.value:>10.2f} {ours.unit:<8}"
        detail = ours.detail
        if compared:
            theirs = row.dbos
            if theirs is None:
                line += " " * 37  # the width of the DBOS and ratio columns
            else:
                ratio = verdict(speedup(ours, theirs))
                line += f"  {theirs.value:>10.2f} {theirs.unit:<8}  {ratio:<14}"
                if theirs.detail and theirs.detail != ours.detail:
                    detail = f"{detail} (DBOS: {theirs.detail})"
        lines.append(f"{line} {detail}".rstrip())
    return lines


def payload(rows: list[Row], header: dict[str, Any]) -> dict[str, Any]:
    """The JSON of a run: ``header`` (machine, storage, dbos) and one entry per result."""
    results = []
    for row in rows:
        entry = as_dict(row.durafn)
        if row.dbos is not None:
            ratio = speedup(row.durafn, row.dbos)
            dbos = as_dict(row.dbos)
            del dbos["shape"]
            entry.update(dbos=dbos, speedup=round(ratio, 3), verdict=verdict(ratio))
        results.append(entry)
    return {**header, "results": results}
