"""AsyncStore: a Store's blocking calls run on dedicated threads, off the event loop."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from durafn.store.base import Store

P = ParamSpec("P")
T = TypeVar("T")


class AsyncStore:
    """Wraps a Store for asyncio callers; ``threads=1`` serialises all database work (SQLite)."""

    def __init__(self, store: Store, threads: int = 1) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="durafn-store")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` (a method of the store) on a store thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Wait for calls in flight, then close the store."""
        self._pool.shutdown(wait=True)
        self.store.close()
