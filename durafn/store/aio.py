"""AsyncStore: a Store's blocking calls run on a dedicated thread, off the event loop, grouped.

Calls made while the store thread is busy wait for it together and then run as one group
(:meth:`Store.batch`): one transaction, one commit and one thread hop for all of them, which is
what lets many instances' steps share the cost of a commit (group commit). A lone call runs at
once, so grouping adds no latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast

from durafn.store.base import Outcome, Store

P = ParamSpec("P")
T = TypeVar("T")

MAX_GROUP = 256
"""Calls per group at most, so that one transaction stays short."""

_Call = tuple[Callable[[], Any], asyncio.Future[Any]]


class AsyncStore:
    """Wraps a Store for asyncio callers; its calls run on one thread, in groups."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="durafn-store", daemon=True)
        self._thread.start()

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` (a method of the store) on the store thread."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls.put((functools.partial(fn, *args, **kwargs), future))
        return cast(T, await future)

    def _serve(self) -> None:
        """The store thread: run whatever calls wait, as one group, until closed."""
        while True:
            first = self._calls.get()
            if first is None:
                return
            group = [first]
            while len(group) < MAX_GROUP:
                try:
                    call = self._calls.get_nowait()
                except queue.Empty:
                    break
                if call is None:
                    self._calls.put(None)  # close after this group
                    break
                group.append(call)
            try:
                outcomes = self.store.batch([fn for fn, _ in group])
            except Exception as error:  # the store itself failed: every caller hears of it
                outcomes = [Outcome(error=error)] * len(group)
            # one wake-up of each loop for the whole group
            loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Outcome]]] = {}
            for (_, future), outcome in zip(group, outcomes, strict=True):
                loops.setdefault(future.get_loop(), []).append((future, outcome))
            for loop, settled in loops.items():
                with contextlib.suppress(RuntimeError):  # closed loop: nobody waits any more
                    loop.call_soon_threadsafe(_settle, settled)

    def close(self) -> None:
        """Wait for calls in flight, then close the store."""
        self._calls.put(None)
        self._thread.join()
        self.store.close()


def _settle(settled: list[tuple[asyncio.Future[Any], Outcome]]) -> None:
    for future, outcome in settled:
        if future.done():  # the caller gave up waiting (cancelled)
            continue
        if outcome.error is not None:
            future.set_exception(outcome.error)
        else:
            future.set_result(outcome.value)
