"""AsyncStore: a Store's blocking calls for asyncio callers, grouped, off the loop when they wait.

Calls made together run as one group (:meth:`Store.batch`): one transaction and one commit for
all of them, which is what lets many instances' steps share the cost of a commit (group
commit). Where the store's transactions never wait on I/O (SQLite with ``synchronous=NORMAL``),
the calls a loop makes in one turn run as a group on the loop itself, in its next turn: a
thread hop there and back cost more than the transaction. Where they do (PostgreSQL), a call
made alone while no other is in flight runs on the loop too: the loop has nothing of this
store's to do while it waits, and the hop to the thread and back is a good part of a
sequential step (bench, with ``synchronous=NORMAL``: a 3-step orchestration's latency about a
tenth lower). A group that would have to wait (for another writer's lock), and every other
group, runs on a dedicated thread instead, which groups the calls that arrive while it is
busy. A lone call runs at once either way, so grouping adds no latency.
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
from durafn.store.clock import StoreClock

P = ParamSpec("P")
T = TypeVar("T")

MAX_GROUP = 256
"""Calls per group at most, so that one transaction stays short."""

_Call = tuple[Callable[[], Any], asyncio.Future[Any]]


class AsyncStore:
    """Wraps a Store for asyncio callers; its calls run in groups, on the loop or its thread."""

    def __init__(self, store: Store, clock: StoreClock | None = None) -> None:
        self.store = store
        self.clock = clock or StoreClock()
        """The time by the store's clock, for every time its callers write or compare."""
        self._closed = False
        self._lock = threading.Lock()
        """Held to make a call, run a turn or close, so no call is left behind a closed store."""
        self._immediate = store.immediate
        self._lone_inline = store.lone_calls_inline
        # handed to the thread, and run by it: each counter has one writer (the callers under
        # _lock, the thread), so their difference, the calls in flight, needs no lock to read
        self._handed = 0
        self._served = 0
        self._turn: dict[asyncio.AbstractEventLoop, list[_Call]] = {}
        """Per loop, the calls made in its current turn, to run in its next."""
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="durafn-store", daemon=True)
        self._thread.start()

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` (a method of the store), grouped with other calls."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        call = (functools.partial(fn, *args, **kwargs), future)
        with self._lock:
            if self._closed:
                raise _closed_error()
            if self._immediate or (self._lone_inline and self._idle()):
                turn = self._turn.get(loop)
                if turn is None:
                    turn = self._turn[loop] = []
                    loop.call_soon(self._run_turn, loop)
                turn.append(call)
            else:
                self._hand_on(call)
        return cast(T, await future)

    def _idle(self) -> bool:
        """True when the store thread has no call queued or running."""
        return self._handed == self._served

    def _hand_on(self, call: _Call) -> None:
        """Queue ``call`` for the store thread (``_lock`` held)."""
        self._handed += 1
        self._calls.put(call)

    async def sync_clock(self) -> None:
        """Measure again how far this host's clock is off the store's when the last measurement
        is stale (see StoreClock.stale): a few round trips on PostgreSQL, off the loop.
        """
        if self.clock.stale():
            await asyncio.get_running_loop().run_in_executor(None, self.clock.sync, self.store)

    def _run_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run the calls ``loop`` made in its last turn, on the loop, or hand them to the
        store thread when they would wait. Where only a lone call runs on the loop, several, or
        one made while the thread has work, go to the thread, whose transaction then overlaps
        the loop's work.
        """
        settled: list[tuple[asyncio.Future[Any], Outcome]] = []
        # close (on another thread) waits for this turn: the store stays open under it, and
        # calls handed on reach the store thread before its last call
        with self._lock:
            calls = self._turn.pop(loop, [])  # none: close handed them to the store thread
            if not self._immediate and (len(calls) > 1 or not self._idle()):
                for call in calls:
                    self._hand_on(call)
                calls = []
            for start in range(0, len(calls), MAX_GROUP):
                group = calls[start : start + MAX_GROUP]
                outcomes = self.store.batch_now([fn for fn, _ in group])
                if outcomes is None:
                    for call in group:
                        self._hand_on(call)
                else:
                    settled += [(future, o) for (_, future), o in zip(group, outcomes, strict=True)]
        _settle(settled)

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
            self._served += len(group)
            # one wake-up of each loop for the whole group
            loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Outcome]]] = {}
            for (_, future), outcome in zip(group, outcomes, strict=True):
                loops.setdefault(future.get_loop(), []).append((future, outcome))
            for loop, settled in loops.items():
                with contextlib.suppress(RuntimeError):  # closed loop: nobody waits any more
                    loop.call_soon_threadsafe(_settle, settled)

    def close(self) -> None:
        """Wait for calls in flight, then close the store."""
        with self._lock:
            self._closed = True
            for calls in self._turn.values():  # made and not yet run: the thread runs them first
                for call in calls:
                    self._hand_on(call)
            self._turn.clear()
            self._calls.put(None)
        self._thread.join()
        self.store.close()


def _closed_error() -> RuntimeError:
    return RuntimeError("the store is closed: open another client or runtime to go on")


def _settle(settled: list[tuple[asyncio.Future[Any], Outcome]]) -> None:
    for future, outcome in settled:
        if future.done():  # the caller gave up waiting (cancelled)
            continue
        if outcome.error is not None:
            future.set_exception(outcome.error)
        else:
            future.set_result(outcome.value)
