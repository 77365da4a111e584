"""Hear of work other hosts add to a shared store (PostgreSQL LISTEN) and wake our workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

from durafn.runtime.signals import Signals
from durafn.store.base import WorkListener

log = logging.getLogger("durafn.listener")

WAIT_SECONDS = 5.0
"""The longest one wait blocks; stopping interrupts it, so this only bounds a missed wake-up."""
RETRY_SECONDS = 1.0
"""Pause after a failed wait (database unreachable); the workers' polling goes on meanwhile."""


async def listen_for_work(
    listener: WorkListener, signals: Signals, stopping: asyncio.Event
) -> None:
    """Wake the workers for each announcement until ``stopping`` is set, then close ``listener``.

    Whoever sets ``stopping`` calls ``listener.interrupt()`` too, so a wait in progress ends.
    """
    loop = asyncio.get_running_loop()
    # Its own thread: a wait blocks for seconds and must not hold up the store's thread.
    thread = ThreadPoolExecutor(1, thread_name_prefix="durafn-listener")
    failing = False
    try:
        while not stopping.is_set():
            try:
                work = await loop.run_in_executor(thread, listener.wait, WAIT_SECONDS)
            except Exception as error:
                if not failing:
                    log.warning("listening for other hosts' work failed (%s); retrying", error)
                failing = True
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stopping.wait(), RETRY_SECONDS)
                continue
            if failing:
                log.info("listening for other hosts' work again")
                failing = False
            signals.announce(work)
    finally:
        # On the listener's thread, so that it never closes under a wait still in progress.
        closing = loop.run_in_executor(thread, listener.close)
        thread.shutdown(wait=False)
        await closing
