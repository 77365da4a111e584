"""AsyncStore: a Store's blocking calls run on a dedicated thread, off the event loop, grouped.

Calls made while the store thread is busy wait for it together and then run as one group
(:meth:`Store.batch`): one transaction, one commit and one thread hop for all of them, which is
what lets many instances' steps share the cost of a commit (group commit). A lone call runs at
once, so grouping adds no latency.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar, cast

from durafn.store.base import Outcome, Store

P = ParamSpec("P")
T = TypeVar("T")

MAX_GROUP = 256
"""Calls per group at most, so that one transaction stays short."""


class AsyncStore:
    """Wraps a Store for asyncio callers; its calls run on one thread, in groups."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="durafn-store")
        self._waiting: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` (a method of the store) on the store thread."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((functools.partial(fn, *args, **kwargs), future))
        if self._runner is None:
            self._runner = asyncio.create_task(self._run_groups(), name="durafn store")
        return cast(T, await future)

    async def _run_groups(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                group = self._waiting[:MAX_GROUP]
                del self._waiting[:MAX_GROUP]
                try:
                    outcomes = await loop.run_in_executor(
                        self._pool, self.store.batch, [call for call, _ in group]
                    )
                except BaseException as error:
                    # the store itself failed (or we are cancelled): every caller hears of it
                    outcomes = [Outcome(error=_as_exception(error))] * len(group)
                    if not isinstance(error, Exception):
                        _settle(group, outcomes)
                        raise
                _settle(group, outcomes)
        finally:
            self._runner = None

    def close(self) -> None:
        """Wait for calls in flight, then close the store."""
        self._pool.shutdown(wait=True)
        self.store.close()


def _as_exception(error: BaseException) -> Exception:
    if isinstance(error, Exception):
        return error
    return RuntimeError(f"the store call was interrupted ({type(error).__name__})")


def _settle(
    group: list[tuple[Callable[[], Any], asyncio.Future[Any]]], outcomes: list[Outcome]
) -> None:
    for (_, future), outcome in zip(group, outcomes, strict=True):
        if future.done():  # the caller gave up waiting (cancelled)
            continue
        if outcome.error is not None:
            future.set_exception(outcome.error)
        else:
            future.set_result(outcome.value)
