"""The common shapes on DBOS: ``python -m bench.dbos_shapes SHAPE SYSTEM_DATABASE_URL [--quick]``.

Prints the results as one JSON list on the last line of stdout. DBOS is a process-wide singleton
(``DBOS(config=...)`` once, ``DBOS.launch()``), so ``--compare-dbos`` runs each shape in a fresh
process of this module, which also keeps DBOS out of durafn's process.

The DBOS code mirrors bench/workflows.py with DBOS's async API: async steps and workflows,
started with ``DBOS.start_workflow_async`` and awaited with ``handle.get_result()``, as durafn's
activities are async. The fan-out is DBOS's documented way to run steps concurrently in an async
workflow: one task per step, created in a deterministic order, then ``asyncio.gather``. (The
other idiom, a queue of child workflows as in DBOS's queue tutorial, adds a workflow per step
and a queue poll: about 3x slower here, and not what durafn's fan-out of activities does.)

On SQLite DBOS gets durafn's own settings, WAL and synchronous=NORMAL, as issue 6's baseline
has it: left alone DBOS keeps SQLite's rollback journal, which measured about half as fast.
Also worth knowing when reading the ratios: DBOS's sync API (workflows in its thread pool) gave
about 10% more workflows/s and 25% faster chains on SQLite than the async one.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from typing import Any

from dbos import DBOS
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

from bench.child import print_results
from bench.measure import Result, common_shapes


@DBOS.step()
async def step(value: int) -> int:
    """One step of work: ``value + 1``."""
    return value + 1


@DBOS.workflow()
async def three_steps() -> int:
    """Three steps in sequence from 0: returns 3."""
    value = await step(0)
    value = await step(value)
    return await step(value)


@DBOS.workflow()
async def chain(steps: int) -> int:
    """``steps`` steps in sequence: returns ``steps``."""
    value = 0
    for _ in range(steps):
        value = await step(value)
    return value


@DBOS.workflow()
async def fan_out(width: int) -> int:
    """``width`` steps at once, then the sum of their results."""
    return sum(await asyncio.gather(*(step(n) for n in range(width))))


class DbosEngine:
    """The common shapes' :class:`~bench.measure.Engine` on launched DBOS."""

    async def three_steps(self) -> int:
        """Run ``three_steps`` in the background and wait for its result."""
        return await (await DBOS.start_workflow_async(three_steps)).get_result()

    async def fan_out(self, width: int) -> int:
        """Run ``fan_out`` of ``width`` steps in the background and wait for its result."""
        return await (await DBOS.start_workflow_async(fan_out, width)).get_result()

    async def chain(self, steps: int) -> int:
        """Run ``chain`` of ``steps`` steps in the background and wait for its result."""
        return await (await DBOS.start_workflow_async(chain, steps)).get_result()


def like_durafn(system_database_url: str) -> None:
    """Give DBOS's SQLite file durafn's settings: WAL (kept in the file) and synchronous=NORMAL
    (per connection, so set on every connection DBOS's engines open)."""
    path = make_url(system_database_url).database
    if path is None or not system_database_url.startswith("sqlite"):
        return
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")

    @event.listens_for(Engine, "connect")
    def normal(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def run(shape: str, system_database_url: str, quick: bool) -> list[Result]:
    """Launch DBOS on ``system_database_url``, run one common shape, shut DBOS down."""
    like_durafn(system_database_url)
    DBOS(
        config={
            "name": "durafn-bench",
            "system_database_url": system_database_url,
            "log_level": "WARNING",
        }
    )
    DBOS.launch()
    try:
        return asyncio.run(common_shapes(quick)[shape](DbosEngine()))
    finally:
        DBOS.destroy()


def main(argv: list[str] | None = None) -> int:
    """Run one shape on DBOS and print its results as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.dbos_shapes", description=__doc__)
    parser.add_argument("shape", choices=sorted(common_shapes(False)))
    parser.add_argument("system_database_url", help="sqlite:///FILE or postgresql://...")
    parser.add_argument("--quick", action="store_true", help="the small sizes of `--quick`")
    args = parser.parse_args(argv)
    results = run(args.shape, args.system_database_url, args.quick)
    print_results(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
