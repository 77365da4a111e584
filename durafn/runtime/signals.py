"""Wake-ups: work added, timers changed, instances finished; polling covers the rest.

Work added in this process sets them directly; work other hosts add sets them through the store's
listener (``listener.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

from durafn.store.base import InstanceRecord, OrchestrationWorkItem, Work

StartLease = Callable[[], "tuple[str, datetime] | None"]
"""The lease (worker id, until) under which a start made in this process is handed straight to
this host's dispatcher; None when it is not taking work (stopping)."""


class Signals:
    """Events the workers sleep on, so work added in this process starts at once."""

    def __init__(self, start_lease: StartLease | None = None) -> None:
        self.orchestrations = asyncio.Event()
        self.activities = asyncio.Event()
        self.timers = asyncio.Event()
        self._finished: dict[str, asyncio.Future[InstanceRecord]] = {}
        self._start_lease = start_lease
        self._started: list[OrchestrationWorkItem] = []

    def start_lease(self) -> tuple[str, datetime] | None:
        """The lease for a start made in this process (see StartLease), or None."""
        return None if self._start_lease is None else self._start_lease()

    def started(self, item: OrchestrationWorkItem) -> None:
        """An instance started in this process under :meth:`start_lease`: its first step is
        this host's to run, with no claim.
        """
        self._started.append(item)
        self.orchestrations.set()

    def take_started(self) -> list[OrchestrationWorkItem]:
        """The instances handed over by :meth:`started` since the last call."""
        started, self._started = self._started, []
        return started

    def work_added(self) -> None:
        """New messages or activities may be waiting in the store."""
        self.orchestrations.set()
        self.activities.set()

    def announce(self, work: Work) -> None:
        """Another host or client added ``work`` to the store."""
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
        try:
            return await asyncio.wait_for(asyncio.shield(finished), timeout)
        except asyncio.TimeoutError:
            return None


async def wait(event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event`` up to ``timeout`` seconds and clear it; True if it was set."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
    was_set = event.is_set()
    event.clear()
    return was_set
