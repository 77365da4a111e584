"""StoreClock: this host's clock set to its database's, so that hosts agree on time.

Leases, due times and the visibility of messages are compared across every host sharing a
store. Each host reads its own clock, so a host whose clock ran ahead would take live hosts'
leases early, and a message it stamped would stay hidden from the others until their clocks
caught up. Reading the database's clock on every step would cost a round trip each; a host
instead measures how far its clock is off the server's and adds that. Between measurements a
step of the host's clock (NTP, an operator) is not followed: the time goes on from the last
measurement by a clock nobody sets, until the next measurement takes the step in.
"""

from __future__ import annotations

import functools
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
"""Seconds the host clock may move apart from the ticking clock before it counts as stepped."""

ticks: Callable[[], float] = (
    functools.partial(time.clock_gettime, time.CLOCK_BOOTTIME)
    if hasattr(time, "CLOCK_BOOTTIME")
    else time.monotonic
)
"""Seconds on a clock nobody sets; on Linux one that goes on counting while the machine sleeps,
so that a host resumed from a suspend does not look stepped."""


def utc_now() -> datetime:
    """The wall clock in UTC; the runtime's only source of time (the replay core has none)."""
    return datetime.now(timezone.utc)


class StoreClock:
    """``host_clock`` plus its offset from the store's server clock, as of the last :meth:`sync`
    (``host_clock`` as it is where the store has no server clock).
    """

    def __init__(self, host_clock: Clock = utc_now) -> None:
        self.host_clock = host_clock
        self._synced: tuple[timedelta, datetime, float] | None = None
        """The offset last measured against a server, with the host clock and ``ticks`` then:
        one tuple, replaced whole, as the store thread measures while the loop reads."""
        self._measured = False

    def __call__(self) -> datetime:
        """The time now by the database's clock."""
        host = self.host_clock()
        if self._synced is None:
            return host
        offset, host_then, ticks_then = self._synced
        ticked = ticks() - ticks_then
        if _stepped(host - host_then, ticked):
            host = host_then + timedelta(seconds=ticked)
        return host + offset

    def sync(self, store: Store) -> None:
        """Measure the offset again (blocking: one or a few round trips to the server)."""
        offset = store.clock_offset(self.host_clock)
        self._measured = True
        if offset is not None:
            self._synced = (offset, self.host_clock(), ticks())

    def stale(self) -> bool:
        """Whether the offset wants measuring again: never measured, measured RESYNC_AFTER
        seconds ago, or the host clock stepped since.
        """
        if self._synced is None:
            return not self._measured  # a store without a server clock needs it once
        _, host_then, ticks_then = self._synced
        ticked = ticks() - ticks_then
        return ticked > RESYNC_AFTER or _stepped(self.host_clock() - host_then, ticked)


def _stepped(moved: timedelta, ticked: float) -> bool:
    """Whether the host clock, ``moved`` while ``ticks`` counted ``ticked``, was set meanwhile."""
    return abs(moved.total_seconds() - ticked) > STEPPED
