"""``--compare-dbos``: run each common shape on DBOS too, in its own subprocess, and rate durafn.

DBOS runs on SQLite unless ``--storage`` names a PostgreSQL server, on a fresh system database
per shape (bench/stores.py).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from bench.measure import BenchError, Result, from_dict
from bench.stores import dbos_system_database

DBOS_VERSION = "3.4.0"  # the version the `bench` extra pins
INSTALL_HINT = 'pip install -e ".[bench]"'


def dbos_version() -> str | None:
    """The installed DBOS version, None when it is not installed (not imported here on purpose:
    DBOS keeps process-wide state, so it only ever loads in bench.dbos_shapes subprocesses)."""
    if importlib.util.find_spec("dbos") is None:
        return None
    return importlib.metadata.version("dbos")


def run_dbos_shape(
    shape: str, storage: str | None, sqlite_file: Path, quick: bool
) -> dict[str, Result]:
    """Run one common shape on DBOS in a subprocess; its results by shape name."""
    with dbos_system_database(storage, sqlite_file) as url:
        command = [sys.executable, "-m", "bench.dbos_shapes", shape, url]
        done = subprocess.run(
            [*command, *(["--quick"] if quick else [])],
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
        )
    if done.returncode != 0:
        raise BenchError(f"DBOS shape {shape} exited {done.returncode}:\n{done.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise BenchError(f"DBOS shape {shape} printed no results:\n{done.stderr[-3000:]}")
    # the JSON is the last line: anything DBOS logs to stdout comes before it
    results = [from_dict(r) for r in json.loads(lines[-1])]
    return {r.shape: r for r in results}


def speedup(durafn: Result, dbos: Result) -> float:
    """How many times faster durafn is than DBOS (below 1: slower)."""
    if durafn.higher_is_better:
        return durafn.value / dbos.value
    return dbos.value / durafn.value


def verdict(ratio: float) -> str:
    """A speedup in words: ``x 1.4 faster`` or ``x 2.0 slower``."""
    if ratio >= 1:
        return f"x {ratio:.1f} faster"
    return f"x {1 / ratio:.1f} slower"
