"""Durable timers and leases: wake the dispatcher when a timer is due; keep our leases alive.

A durable timer is an inbox message whose ``visible_at`` is its fire time, so firing it needs no
write: when the time comes the message becomes claimable and the dispatcher is woken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from durafn.runtime.config import RuntimeConfig
from durafn.runtime.signals import Signals, wait
from durafn.store.aio import AsyncStore

log = logging.getLogger("durafn.timers")

MAX_TIMER_SLEEP = 5.0
"""Re-read the next due time at least this often, in case the news of a timer another host
created did not reach us (see ``listener.py``)."""


async def run_timers(db: AsyncStore, signals: Signals, stopping: asyncio.Event) -> None:
    """Sleep until the next timer is due (or timers change), then wake the dispatcher."""
    clock = db.clock
    while not stopping.is_set():
        try:
            now = clock()
            due = await db.run(db.store.next_visible_time, now)
        except Exception:
            log.exception("reading the next timer failed; retrying")
            due = None
        if due is None:
            delay = MAX_TIMER_SLEEP
        else:
            delay = min(max((due - clock()).total_seconds(), 0.0), MAX_TIMER_SLEEP)
        if await wait(signals.timers, delay):
            continue
        if due is not None and clock() >= due:
            signals.orchestrations.set()


async def renew_leases(
    db: AsyncStore, config: RuntimeConfig, worker_id: str, stopping: asyncio.Event
) -> None:
    """Extend this host's leases every third of a lease, so only a dead host's leases expire,
    and then, when it is stale (a minute old, or this host's clock stepped), measure again how
    far this host's clock is off the store's.
    """
    interval = config.lease_seconds / 3
    while not stopping.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stopping.wait(), interval)
        if stopping.is_set():
            return
        try:
            until = db.clock() + timedelta(seconds=config.lease_seconds)
            await db.run(db.store.renew_leases, worker_id, until)
        except Exception:
            log.exception("renewing leases failed; retrying")
        try:
            await db.sync_clock()
        except Exception:
            log.exception("reading the store's clock failed; keeping the offset measured before")
