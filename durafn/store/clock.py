"""StoreClock: this host's clock set to its database's, so that hosts agree on time.

Leases, due times and the visibility of messages are compared across every host sharing a
store. Each host reads its own clock, so a host whose clock ran ahead would take live hosts'
leases early, and a message it stamped would stay hidden from the others until their clocks
caught up. Reading the database's clock on every step would cost a round trip each; a host
instead measures how far its clock is off the server's and adds that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from durafn.store.base import Store

Clock = Callable[[], datetime]

RESYNC_AFTER = 60.0
"""Seconds after which a clock is measured again by whoever asks whether it is stale."""
STEPPED = 1.0
"""Seconds the host clock may move apart from the monotonic clock before it counts as stepped
(by NTP, an operator, a resumed VM), which makes the offset measured before it wrong."""


def utc_now() -> datetime:
    """The wall clock in UTC; the runtime's only source of time (the replay core has none)."""
    return datetime.now(timezone.utc)


class StoreClock:
    """``host_clock`` plus its offset from the store's server clock, as of the last :meth:`sync`."""

    def __init__(self, host_clock: Clock = utc_now) -> None:
        self.host_clock = host_clock
        self.offset = timedelta(0)
        self._synced: tuple[datetime, float] | None = None
        """The host clock and the monotonic clock when the offset was measured."""

    def __call__(self) -> datetime:
        """The time now by the database's clock."""
        return self.host_clock() + self.offset

    def sync(self, store: Store) -> None:
        """Measure the offset again (blocking: one or a few round trips to the server)."""
        self.offset = store.clock_offset(self.host_clock)
        self._synced = (self.host_clock(), time.monotonic())

    def stale(self) -> bool:
        """Whether the offset wants measuring again: never measured, measured RESYNC_AFTER
        seconds ago, or the host clock stepped since.
        """
        if self._synced is None:
            return True
        host_then, monotonic_then = self._synced
        elapsed = time.monotonic() - monotonic_then
        moved = (self.host_clock() - host_then).total_seconds()
        return elapsed > RESYNC_AFTER or abs(moved - elapsed) > STEPPED
