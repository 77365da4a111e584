"""Shapes run in a process of their own, ``python -m MODULE ARGS...``, which prints its results
as one JSON list on the last line of stdout (anything a library logs there comes before it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.measure import BenchError, Result, as_dict, from_dict

ROOT = Path(__file__).resolve().parent.parent


def run_child(what: str, module: str, *args: str) -> list[Result]:
    """Run ``python -m module args...`` from the project's folder; its results. BenchError,
    naming ``what``, when it fails or prints none."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise BenchError(f"{what} exited {done.returncode}:\n{done.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise BenchError(f"{what} printed no results:\n{done.stderr[-3000:]}")
    return [from_dict(r) for r in json.loads(lines[-1])]


def print_results(results: list[Result]) -> None:
    """Print ``results`` as :func:`run_child` reads them, in the child."""
    print(json.dumps([as_dict(r) for r in results]))
