"""AsyncStore: calls waiting for the store thread run together, one transaction per group."""

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from durafn.errors import InstanceExistsError
from durafn.store import open_store
from durafn.store.aio import AsyncStore
from durafn.store.base import Outcome

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


def test_concurrent_calls_are_grouped_and_each_gets_its_own_outcome(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'durafn.db'}")
    groups: list[int] = []
    real_batch = store.batch

    def counting_batch(calls: Sequence[Callable[[], Any]]) -> list[Outcome]:
        groups.append(len(calls))
        return real_batch(calls)

    store.batch = counting_batch  # type: ignore[method-assign]
    db = AsyncStore(store)

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
    assert sum(groups) == 41 and len(groups) < 41  # a lone first call, then the rest together
    reopened = open_store(f"sqlite:///{tmp_path / 'durafn.db'}")
    try:
        assert all(reopened.get_instance(f"i{n}") is not None for n in range(40))
        record = reopened.get_instance("i7")
        assert record is not None and record.execution_id == "e-7"
    finally:
        reopened.close()


def test_a_call_that_fails_outside_the_store_reaches_only_its_caller(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'durafn.db'}")
    db = AsyncStore(store)

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
    store = open_store(f"sqlite:///{tmp_path / 'durafn.db'}")
    db = AsyncStore(store)

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
    path = tmp_path / "durafn.db"
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
