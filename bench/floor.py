"""The floor under the latency shape: four bare one-row commits in a row on the store a shape
runs on, with its durability setting and no engine. SPEC §9 lets no activity run on a decision
that is not durable, so a 3-step orchestration is at least four commits in a row (its start, two
results that schedule the next step, the last result with the output); the latency above this
floor is what the engine adds: its own work, and its transactions' statements beside the commit.
"""

from __future__ import annotations

import contextlib
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterator

from sqlalchemy.engine import URL, make_url

from bench.measure import Result, percentile
from bench.stores import autocommit_connection, is_postgres
from durafn.store.dialect import synchronous_mode

COMMITS_PER_RUN = 4
TABLE = "durafn_bench_floor"
ROW = "x" * 200
"""About what a step's history row holds."""


@contextlib.contextmanager
def _scratch_table(
    execute: Callable[[str, tuple[str, ...]], object], key: str, placeholder: str
) -> Iterator[Callable[[], None]]:
    """A table of its own for the INSERTs, dropped afterwards: a store given as ``--storage``
    is left as it was."""
    execute(f"CREATE TABLE {TABLE} (id {key} PRIMARY KEY, row TEXT)", ())

    def insert() -> None:
        execute(f"INSERT INTO {TABLE} (row) VALUES ({placeholder})", (ROW,))

    try:
        yield insert
    finally:
        execute(f"DROP TABLE {TABLE}", ())


@contextlib.contextmanager
def _sqlite_insert(url: URL) -> Iterator[Callable[[], None]]:
    """One-row INSERTs, each its own transaction, as durafn's SQLite store sets the file up."""
    conn = sqlite3.connect(url.database or ":memory:", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous_mode(url, 'NORMAL')}")
        with _scratch_table(conn.execute, "INTEGER", "?") as insert:
            yield insert
    finally:
        conn.close()


@contextlib.contextmanager
def _postgres_insert(url: URL) -> Iterator[Callable[[], None]]:
    """One-row INSERTs, each its own transaction (one round trip: autocommit), with the
    ``synchronous_commit`` durafn's ``?synchronous=`` gives its connections."""
    with autocommit_connection(url.render_as_string(hide_password=False)) as conn:
        if synchronous_mode(url, "FULL") == "NORMAL":
            conn.execute("SET synchronous_commit = off")
        with _scratch_table(conn.execute, "bigserial", "%s") as insert:
            yield insert


def commit_floor(url: str, count: int, warm_up: int) -> list[Result]:
    """p50 and p99 of ``count`` runs of four bare commits in a row on the store at ``url``,
    after ``warm_up`` unmeasured ones (as the latency shape measures its runs)."""
    parsed = make_url(url)
    opened = _postgres_insert(parsed) if is_postgres(url) else _sqlite_insert(parsed)
    with opened as insert:
        samples = []
        for run in range(warm_up + count):
            began = time.perf_counter()
            for _ in range(COMMITS_PER_RUN):
                insert()
            if run >= warm_up:
                samples.append((time.perf_counter() - began) * 1000)
    detail = f"one-row INSERTs, no engine; {count} runs after {warm_up} unmeasured"
    return [
        Result("floor: 4 bare commits p50", statistics.median(samples), "ms", detail),
        Result("floor: 4 bare commits p99", percentile(samples, 0.99), "ms", detail),
    ]
