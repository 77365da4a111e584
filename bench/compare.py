"""``--compare-dbos``: run each common shape on DBOS too, in its own subprocess, and rate durafn.

DBOS runs on SQLite unless ``--storage`` names a PostgreSQL server, on a fresh system database
per shape (bench/stores.py).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from bench.child import run_child
from bench.measure import Result
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
        args = [shape, url, *(["--quick"] if quick else [])]
        results = run_child(f"DBOS shape {shape}", "bench.dbos_shapes", *args)
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
