"""Runtime: the store, the dispatcher, the activity worker and the timers, in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

from durafn.app import App
from durafn.client import DEFAULT_STORAGE, DurableOrchestrationClient
from durafn.runtime.activities import ActivityWorker
from durafn.runtime.config import RuntimeConfig
from durafn.runtime.dispatcher import Dispatcher
from durafn.runtime.listener import listen_for_work
from durafn.runtime.signals import Signals
from durafn.runtime.timers import renew_leases, run_timers
from durafn.store import open_store
from durafn.store.aio import AsyncStore
from durafn.store.base import Work, WorkListener
from durafn.store.clock import Clock, StoreClock, utc_now

__all__ = ["Runtime", "RuntimeConfig"]


log = logging.getLogger("durafn.runtime")


def _not_started() -> RuntimeError:
    return RuntimeError("the Runtime is not started; use 'async with Runtime(app) as rt'")


class Runtime:
    """Runs an app's orchestrations and activities on a store: ``async with Runtime(app) as rt``.

    ``rt.client`` is a DurableOrchestrationClient on the same store. ``durafn start`` is this
    plus the HTTP host, the cron scheduler and the banner. ``clock`` is this host's clock; the
    runtime adds how far it is off the database server's (PostgreSQL), so hosts agree on time.
    """

    def __init__(
        self,
        app: App,
        storage: str | None = None,
        *,
        config: RuntimeConfig | None = None,
        clock: Clock = utc_now,
    ) -> None:
        app.validate()
        self.app = app
        self.storage = storage or os.environ.get("DURAFN_STORAGE") or DEFAULT_STORAGE
        self.config = config or RuntimeConfig()
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._clock = clock
        self._signals: Signals | None = None
        self._db: AsyncStore | None = None
        self._client: DurableOrchestrationClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping: asyncio.Event | None = None
        self._activities: ActivityWorker | None = None
        self._listener: WorkListener | None = None
        self.dispatcher: Dispatcher | None = None

    @property
    def client(self) -> DurableOrchestrationClient:
        """A durable client on this runtime's store whose starts wake the workers at once."""
        if self._client is None:
            raise _not_started()
        return self._client

    async def start(self) -> None:
        """Open the store, register this host and start the workers."""
        loop = asyncio.get_running_loop()
        store = await loop.run_in_executor(None, open_store, self.storage)
        db = AsyncStore(store, StoreClock(self._clock))
        try:
            await db.sync_clock()
            await db.run(store.attach_host, self.worker_id)
            listener = await loop.run_in_executor(None, store.listen)
        except BaseException:
            await loop.run_in_executor(None, db.close)
            raise
        self._db = db
        stopping = self._stopping = asyncio.Event()

        async def starter(
            instance_id: str, name: str, input: str | None, execution_id: str, now: datetime
        ) -> bool:
            if stopping.is_set() or self.dispatcher is None:
                return False
            return await self.dispatcher.start_instance(instance_id, name, input, execution_id, now)

        def holder(instance_id: str) -> bool:
            return self.dispatcher is not None and self.dispatcher.holds(instance_id)

        signals = self._signals = Signals(starter, holder)
        self._client = DurableOrchestrationClient(db, app=self.app, signals=signals)
        args = (self.app, db, signals, self.config, self.worker_id)
        self.dispatcher = Dispatcher(*args)
        self._activities = ActivityWorker(
            *args, shared=listener is not None, step_on_result=self.dispatcher.step_on_result
        )
        self.dispatcher.activities = self._activities
        self._spawn(self.dispatcher.run(stopping), "dispatcher")
        self._spawn(self._activities.run(stopping), "activities")
        self._spawn(run_timers(db, signals, stopping), "timers")
        self._spawn(renew_leases(db, self.config, self.worker_id, stopping), "leases")
        if listener is not None:
            self._listener = listener
            self._spawn(listen_for_work(listener, signals, stopping), "listener")

    async def claim_schedule_run(self, name: str, due: datetime) -> bool:
        """Whether this host makes the run of cron function ``name`` due at ``due``: of the
        hosts sharing a store, each of which schedules it, exactly one gets True.
        """
        if self._db is None:
            raise _not_started()
        db = self._db
        return await db.run(db.store.claim_schedule_run, name, due, self.worker_id, db.clock())

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=f"durafn {name}"))

    async def stop(self) -> None:
        """Stop claiming work, let activities in flight finish (up to the grace period), release
        this host's leases so unfinished work is claimable at once, and close the store.
        """
        if self._stopping is None or self._db is None:
            return
        self._stopping.set()
        if self._listener is not None:
            self._listener.interrupt()
            self._listener = None  # the listening task closes it
        assert self._signals is not None
        self._signals.announce(Work.ORCHESTRATIONS | Work.ACTIVITIES | Work.TIMERS)
        if self._activities is not None:
            await self._activities.drain(self.config.shutdown_grace_seconds)
        for task in self._tasks:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), self.config.shutdown_grace_seconds)
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        db = self._db
        loop = asyncio.get_running_loop()
        try:
            await db.run(db.store.release_leases, self.worker_id)
        except Exception:
            log.exception("releasing leases failed; they will expire on their own")
        await loop.run_in_executor(None, db.close)
        self._db = None
        self._stopping = None

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
