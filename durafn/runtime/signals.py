"""Wake-ups: work added, timers changed, instances finished; polling covers the rest.

Work added in this process sets them directly; work other hosts add sets them through the store's
listener (``listener.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

from durafn.store.base import OrchestrationWorkItem, Work

StartLease = Callable[[], "tuple[str, datetime] | None"]
"""The lease (worker id, until) under which a start made in this process is handed straight to
this host's dispatcher; None when it is not taking work (stopping)."""


class Signals:
    """Events the workers sleep on, so work added in this process starts at once."""

    def __init__(self, start_lease: StartLease | None = None) -> None:
        self.orchestrations = asyncio.Event()
        self.activities = asyncio.Event()
        self.timers = asyncio.Event()
        self._changes: dict[str, asyncio.Event] = {}
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

    def instance_finished(self, instance_id: str) -> None:
        """A step ending ``instance_id`` (Completed, Failed, Terminated) was committed: wake
        whoever waits on it.
        """
        event = self._changes.pop(instance_id, None)
        if event is not None:
            event.set()

    async def wait_for_finish(self, instance_id: str, timeout: float) -> None:
        """Return when ``instance_id`` commits its last step, or after ``timeout`` seconds."""
        event = self._changes.setdefault(instance_id, asyncio.Event())
        await wait(event, timeout)


async def wait(event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event`` up to ``timeout`` seconds and clear it; True if it was set."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
    was_set = event.is_set()
    event.clear()
    return was_set
