"""AsyncStore: calls made together run as one group, one transaction per group, on the loop where
the store never waits on I/O and on the store thread otherwise or when they would wait; on
PostgreSQL a lone call made while the store thread is idle runs on the loop."""

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from durafn.errors import InstanceExistsError
from durafn.models import ACTIVE_STATUSES
from durafn.replay.history import EventRaised
from durafn.store import open_store
from durafn.store.aio import AsyncStore
from durafn.store.base import Outcome, Store

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
DB = "durafn.db"


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
def test_concurrent_calls_are_grouped_and_each_gets_its_own_outcome(
    tmp_path: Path, synchronous: str
) -> None:
    store, db = _opened(tmp_path, synchronous)
    groups: list[int] = []
    real_batch, real_batch_now = store.batch, store.batch_now

    def counting_batch(calls: Sequence[Callable[[], Any]]) -> list[Outcome]:
        groups.append(len(calls))
        return real_batch(calls)

    def counting_batch_now(calls: Sequence[Callable[[], Any]]) -> list[Outcome] | None:
        outcomes = real_batch_now(calls)
        if outcomes is not None:
            groups.append(len(calls))
        return outcomes

    store.batch = counting_batch  # type: ignore[method-assign]
    store.batch_now = counting_batch_now  # type: ignore[method-assign]

    async def main() -> list[Any]:
        ids = [f"i{n}" for n in range(40)] + ["i7"]  # one id twice: that start alone fails
        return await asyncio.gather(
            *(
                db.run(store.create_instance, i, "orch", None, f"e-{n}", T0)
                for n, i in enumerate(ids)
            ),
            return_exceptions=True,
        )

    try:
        results = asyncio.run(main())
    finally:
        db.close()
    assert [type(r) for r in results] == [type(None)] * 40 + [InstanceExistsError]
    assert sum(groups) == 41 and len(groups) < 41  # grouped, in one or a few transactions
    reopened = open_store(f"sqlite:///{tmp_path / DB}")
    try:
        assert all(reopened.get_instance(f"i{n}") is not None for n in range(40))
        record = reopened.get_instance("i7")
        assert record is not None and record.execution_id == "e-7"
    finally:
        reopened.close()


@pytest.mark.parametrize(("synchronous", "on_loop"), [("NORMAL", True), ("FULL", False)])
def test_calls_run_on_the_loop_only_where_the_store_never_waits_on_io(
    tmp_path: Path, synchronous: str, on_loop: bool
) -> None:
    _, db = _opened(tmp_path, synchronous)

    async def main() -> list[int]:
        return list(await asyncio.gather(db.run(threading.get_ident), db.run(threading.get_ident)))

    try:
        ran_on = asyncio.run(main())
    finally:
        db.close()
    assert (ran_on == [threading.get_ident()] * 2) is on_loop


def test_a_call_that_would_wait_for_another_writer_waits_off_the_loop(tmp_path: Path) -> None:
    """Another process's write lock (here another connection's) must not stall the loop: the
    call waits on the store thread and commits once the lock is released.
    """
    store, db = _opened(tmp_path)
    other = sqlite3.connect(tmp_path / DB, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    stalled = threading.Event()

    def unstall() -> None:  # only if the loop stalled: it would wait for the lock for ever
        stalled.set()
        other.execute("ROLLBACK")

    watchdog = threading.Timer(10, unstall)
    watchdog.start()

    async def main() -> int:
        ticks = 0
        create = asyncio.ensure_future(db.run(store.create_instance, "a", "orch", None, "e", T0))
        while ticks < 20:  # the loop keeps turning while the call waits
            await asyncio.sleep(0.01)
            ticks += 1
        watchdog.cancel()
        assert not stalled.is_set() and not create.done()
        other.execute("ROLLBACK")
        await create
        return ticks

    try:
        assert asyncio.run(main()) == 20
        record = store.get_instance("a")
        assert record is not None and record.execution_id == "e"
    finally:
        other.close()
        db.close()


@pytest.mark.postgres
def test_on_postgresql_a_lone_call_runs_on_the_loop_and_others_on_the_store_thread(
    pg_store: Store,
) -> None:
    db = AsyncStore(pg_store)

    async def main() -> tuple[int, int, list[int], int]:
        lone = await db.run(threading.get_ident)
        together = await asyncio.gather(db.run(threading.get_ident), db.run(threading.get_ident))
        busy = asyncio.gather(db.run(time.sleep, 0.3), db.run(time.sleep, 0))
        await asyncio.sleep(0.1)  # the store thread is running them
        while_busy = await db.run(threading.get_ident)
        await busy
        return threading.get_ident(), lone, list(together), while_busy

    try:
        loop_thread, lone, together, while_busy = asyncio.run(main())
    finally:
        db.close()
    assert lone == loop_thread
    assert loop_thread not in together and len(set(together)) == 1  # one group, on the thread
    assert while_busy == together[0]


@pytest.mark.postgres
def test_on_postgresql_a_lone_call_that_would_wait_for_a_row_lock_waits_off_the_loop(
    pg_store: Store, postgres_url: str
) -> None:
    """Another transaction's row lock must not stall the loop: the call gives up on the loop at
    once, waits on the store thread and commits once the lock is released."""
    pg_store.create_instance("a", "orch", None, "e", T0)
    db = AsyncStore(pg_store)
    ran_on: list[int] = []
    event = EventRaised(timestamp=T0, name="go", input=None)

    def enqueue() -> None:
        ran_on.append(threading.get_ident())
        pg_store.enqueue_message("a", event, T0, allowed=ACTIVE_STATUSES, action="raise to")

    holder = sqlalchemy.create_engine(postgres_url)
    with holder.connect() as other:
        other.exec_driver_sql("SELECT 1 FROM instances WHERE instance_id = 'a' FOR UPDATE")
        stalled = threading.Event()

        def unstall() -> None:  # only if the loop stalled: it would wait for the lock for ever
            stalled.set()
            other.rollback()

        watchdog = threading.Timer(10, unstall)
        watchdog.start()

        async def main() -> int:
            ticks = 0
            sent = asyncio.ensure_future(db.run(enqueue))
            while ticks < 20:  # the loop keeps turning while the call waits
                await asyncio.sleep(0.01)
                ticks += 1
            watchdog.cancel()
            assert not stalled.is_set() and not sent.done()
            other.rollback()
            await sent
            return threading.get_ident()

        try:
            loop_thread = asyncio.run(main())
        finally:
            watchdog.cancel()
            db.close()
    holder.dispose()
    assert ran_on[0] == loop_thread and ran_on[1:] and loop_thread not in ran_on[1:]
    reopened = open_store(postgres_url)
    try:
        item = reopened.claim_orchestrations("w", T0, T0.replace(year=2031), 1)
        assert [getattr(m.event, "name", None) for m in item[0].messages][-1] == "go"
    finally:
        reopened.close()


def test_a_call_made_before_close_still_runs(tmp_path: Path) -> None:
    store, db = _opened(tmp_path)

    async def main() -> None:
        create = asyncio.ensure_future(db.run(store.create_instance, "a", "orch", None, "e", T0))
        await asyncio.sleep(0)  # the call is made; the loop has not run it yet
        db.close()
        await create

    asyncio.run(main())
    assert _stored(tmp_path, "a")


def test_a_call_after_close_fails_rather_than_waiting_for_ever(tmp_path: Path) -> None:
    store, db = _opened(tmp_path)
    db.close()
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(db.run(store.get_instance, "a"))


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
def test_close_from_another_thread_waits_for_the_call_running(
    tmp_path: Path, synchronous: str
) -> None:
    # the runtime closes its store in an executor thread while the loop goes on
    store, db = _opened(tmp_path, synchronous)
    running, closing = threading.Event(), threading.Event()

    def create_once_close_began() -> None:
        running.set()
        assert closing.wait(5)
        time.sleep(0.05)  # time enough for a close that does not wait to close the store
        store.create_instance("a", "orch", None, "e", T0)

    def close() -> None:
        assert running.wait(5)
        closing.set()
        db.close()

    async def main() -> None:
        closed = asyncio.get_running_loop().run_in_executor(None, close)
        await db.run(create_once_close_began)
        await closed

    asyncio.run(main())
    assert _stored(tmp_path, "a")


def test_a_call_that_fails_outside_the_store_reaches_only_its_caller(tmp_path: Path) -> None:
    store, db = _opened(tmp_path)

    def explode() -> None:
        raise OSError("disk gone")

    async def main() -> tuple[Any, ...]:
        return await asyncio.gather(
            db.run(store.create_instance, "a", "orch", None, "e", T0),
            db.run(explode),
            db.run(store.get_instance, "a"),
            return_exceptions=True,
        )

    try:
        created, failed, found = asyncio.run(main())
    finally:
        db.close()
    assert created is None and isinstance(failed, OSError)
    assert found is not None and found.instance_id == "a"


@pytest.mark.parametrize("count", [1, 300])
def test_every_waiting_call_runs(tmp_path: Path, count: int) -> None:
    store, db = _opened(tmp_path)

    async def main() -> list[Any]:
        return await asyncio.gather(*(db.run(store.get_instance, f"i{n}") for n in range(count)))

    try:
        assert asyncio.run(main()) == [None] * count
    finally:
        db.close()


def test_the_wal_is_checkpointed_into_the_database_while_the_store_is_open(
    tmp_path: Path,
) -> None:
    """The store's connections leave checkpoints to its checkpointer thread, which must run."""
    path = tmp_path / DB
    store = open_store(f"sqlite:///{path}")
    try:
        before = path.stat().st_size
        for n in range(300):
            store.create_instance(f"i{n}", "orch", "x" * 200, "e", T0)
        deadline = time.monotonic() + 5
        while path.stat().st_size == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size > before
    finally:
        store.close()


def _opened(tmp_path: Path, synchronous: str = "NORMAL") -> tuple[Store, AsyncStore]:
    """A store on the SQLite file in ``tmp_path``, and the AsyncStore wrapping it."""
    store = open_store(f"sqlite:///{tmp_path / DB}?synchronous={synchronous}")
    return store, AsyncStore(store)


def _stored(tmp_path: Path, instance_id: str) -> bool:
    """Whether the instance is in the database, as a store opened afresh reads it."""
    reopened = open_store(f"sqlite:///{tmp_path / DB}")
    try:
        return reopened.get_instance(instance_id) is not None
    finally:
        reopened.close()
