"""Wake-ups: work added, timers changed, instances finished; polling covers the rest.

Work added in this process sets them directly; work other hosts add sets them through the store's
listener (``listener.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime

from durafn.store.base import InstanceRecord, Work

Starter = Callable[[str, str, "str | None", str, datetime], Awaitable[bool]]
"""Runs a start made in the workers' process (instance id, orchestrator name, input, execution
id, time): the instance is created with its first step, in one transaction. False when the
workers are not taking work (stopping)."""

Holder = Callable[[str], bool]
"""Whether an instance runs live in the workers' process, so its finish is committed there."""


class Signals:
    """Events the workers sleep on, so work added in this process starts at once."""

    def __init__(self, starter: Starter | None = None, holder: Holder | None = None) -> None:
        self.orchestrations = asyncio.Event()
        self.activities = asyncio.Event()
        self.timers = asyncio.Event()
        self._finished: dict[str, asyncio.Future[InstanceRecord]] = {}
        self._starter = starter
        self._holder = holder

    async def start(
        self, instance_id: str, name: str, input: str | None, execution_id: str, now: datetime
    ) -> bool:
        """Start an instance with its first step in this process (see Starter); False if not."""
        if self._starter is None:
            return False
        return await self._starter(instance_id, name, input, execution_id, now)

    def runs_here(self, instance_id: str) -> bool:
        """Whether the instance runs live in this process (see Holder)."""
        return self._holder is not None and self._holder(instance_id)

    def announce(self, work: Work) -> None:
        """Wake the workers ``work``, added to the store here or by another host or client,
        is for, and only them: an activity claim is a write transaction, not made for nothing.
        """
        if work & Work.ORCHESTRATIONS:
            self.orchestrations.set()
        if work & Work.ACTIVITIES:
            self.activities.set()
        if work & Work.TIMERS:
            self.timers.set()

    def instance_finished(self, record: InstanceRecord) -> None:
        """A step ending the instance (Completed, Failed, Terminated) was committed, leaving it
        as ``record``: hand that to whoever waits on it.
        """
        finished = self._finished.pop(record.instance_id, None)
        if finished is not None and not finished.done():
            finished.set_result(record)

    async def wait_for_finish(self, instance_id: str, timeout: float) -> InstanceRecord | None:
        """The instance as its last step left it, when that step is committed in this process
        within ``timeout`` seconds; else None.
        """
        finished = self._finished.get(instance_id)
        if finished is None:
            finished = self._finished[instance_id] = asyncio.get_running_loop().create_future()
        # asyncio.wait, unlike wait_for, leaves the future (shared by every waiter) alone on a
        # timeout, and wakes its caller with one callback fewer
        await asyncio.wait((finished,), timeout=timeout)
        return finished.result() if finished.done() else None


async def wait(event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event`` up to ``timeout`` seconds and clear it; True if it was set."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
    was_set = event.is_set()
    event.clear()
    return was_set
