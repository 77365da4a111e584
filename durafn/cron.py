"""Cron triggers: the ``@app.schedule`` functions of an app, run by apscheduler 3 in the event loop.

``durafn start`` runs a CronScheduler next to the Runtime; embedded users can too::

    async with df.Runtime(app) as rt, df.CronScheduler(rt):
        ...
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from durafn.functions import FunctionKind, FunctionSpec
from durafn.ncrontab import parse_schedule

if TYPE_CHECKING:
    from durafn.runtime import Runtime

log = logging.getLogger("durafn.cron")

PAST_DUE_SECONDS = 1.0
"""Seconds late after which a run is past due (a run standing for missed ones always is)."""


@dataclass(frozen=True)
class TimerRequest:
    """What a schedule function receives: whether this run is late, and when it was due."""

    past_due: bool
    """True when the run starts noticeably later than scheduled, or covers missed runs."""
    schedule: str = ""
    """The NCRONTAB expression of the function."""
    scheduled_time: datetime | None = None
    """When this run was due (UTC); for a run covering missed ones, the earliest."""


def timer_request(
    schedule: str, due: list[datetime], now: datetime, past_due_seconds: float = PAST_DUE_SECONDS
) -> TimerRequest:
    """The TimerRequest of a run starting at ``now`` that was due at ``due``: one time, or the
    first missed time and its own when runs were missed before it; none when unknown.
    """
    if not due:
        return TimerRequest(past_due=False, schedule=schedule)
    late = (now - due[-1]).total_seconds()
    return TimerRequest(
        past_due=len(due) > 1 or late > past_due_seconds,
        schedule=schedule,
        scheduled_time=due[0],
    )


def cron_trigger(expression: str) -> CronTrigger:
    """An apscheduler CronTrigger in UTC for a six-field NCRONTAB expression (ValueError if bad)."""
    fields = parse_schedule(expression).apscheduler_fields()
    return CronTrigger(timezone=timezone.utc, **fields)


def _call_arguments(spec: FunctionSpec) -> tuple[str | None, str | None]:
    """The parameters that get the TimerRequest and the durable client (None: not taken)."""
    names = [n for n in inspect.signature(spec.fn).parameters if n != spec.client_name]
    if spec.trigger_arg_name and spec.trigger_arg_name in names:
        timer: str | None = spec.trigger_arg_name
    else:
        timer = names[0] if names else None
    return timer, spec.client_name


class CronScheduler:
    """Runs ``runtime.app``'s schedule functions while entered; the Runtime must be started.

    Sync functions run in a thread, ``async def`` ones in the event loop. A run is never
    overlapped by the next one; runs missed meanwhile are coalesced into one, marked past due.
    An exception is logged and the schedule goes on. Of the hosts sharing a store, one makes
    each run.
    """

    def __init__(self, runtime: Runtime, *, past_due_seconds: float = PAST_DUE_SECONDS) -> None:
        self.runtime = runtime
        self.past_due_seconds = past_due_seconds
        self.specs = [s for s in runtime.app.functions if s.kind is FunctionKind.SCHEDULE]
        self._scheduler: AsyncIOScheduler | None = None
        self._due: dict[str, deque[list[datetime]]] = defaultdict(deque)
        self._next_due: dict[str, datetime] = {}
        self._triggers: dict[str, CronTrigger] = {}
        self._running: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Schedule every schedule function (those with ``run_on_startup`` also run now)."""
        if not self.specs:
            return
        # apscheduler logs every run at INFO; a per-second schedule would drown the host's log
        quiet = logging.getLogger("apscheduler")
        if quiet.level == logging.NOTSET:
            quiet.setLevel(logging.WARNING)
        scheduler = AsyncIOScheduler(timezone=timezone.utc)
        scheduler.add_listener(self._submitted, EVENT_JOB_SUBMITTED)
        now = datetime.now(timezone.utc)
        for spec in self.specs:
            scheduler.add_job(
                self._run,
                trigger=self._triggers.setdefault(spec.name, cron_trigger(spec.schedule or "")),
                args=(spec,),
                id=spec.name,
                name=spec.name,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=None,
                **({"next_run_time": now} if spec.run_on_startup else {}),
            )
        scheduler.start()
        for job in scheduler.get_jobs():
            self._next_due[job.id] = job.next_run_time
        self._scheduler = scheduler

    async def stop(self, grace_seconds: float | None = None) -> None:
        """Stop scheduling, let runs in flight finish (up to the runtime's grace period)."""
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is None:
            return
        scheduler.pause()
        grace = (
            self.runtime.config.shutdown_grace_seconds if grace_seconds is None else grace_seconds
        )
        if self._running:
            await asyncio.wait(set(self._running), timeout=grace)
        scheduler.shutdown(wait=False)
        # AsyncIOScheduler shuts down in a loop callback; let it run before the loop moves on
        for _ in range(10):
            if not scheduler.running:
                break
            await asyncio.sleep(0)

    def _submitted(self, event: JobSubmissionEvent) -> None:
        # The submission event is dispatched before the job's coroutine first runs, so _run finds
        # here the times it stands for. apscheduler hands over only the last of coalesced run
        # times, so runs missed since the previous submission are worked out from the trigger.
        due: datetime = event.scheduled_run_times[-1]
        expected = self._next_due.get(event.job_id)
        times = [expected, due] if expected is not None and expected < due else [due]
        self._next_due[event.job_id] = self._triggers[event.job_id].get_next_fire_time(due, due)
        self._due[event.job_id].append(times)

    async def _run(self, spec: FunctionSpec) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            await self._invoke(spec)
        except Exception:
            log.exception("schedule function '%s' (%s) failed", spec.name, spec.location)
        finally:
            if task is not None:
                self._running.discard(task)

    async def _invoke(self, spec: FunctionSpec) -> None:
        queued = self._due.get(spec.name)
        due = queued.popleft() if queued else []
        # Every host sharing the store schedules the function; the one that claims the run
        # makes it. Runs missed and coalesced are claimed by their last due time, the one the
        # other hosts also reach.
        if due and not await self.runtime.claim_schedule_run(spec.name, due[-1]):
            log.debug("schedule function '%s' due at %s runs on another host", spec.name, due[-1])
            return
        timer_arg, client_arg = _call_arguments(spec)
        kwargs: dict[str, Any] = {}
        if timer_arg is not None:
            now = datetime.now(timezone.utc)
            schedule = spec.schedule or ""
            kwargs[timer_arg] = timer_request(schedule, due, now, self.past_due_seconds)
        if client_arg is not None:
            kwargs[client_arg] = self.runtime.client
        if inspect.iscoroutinefunction(spec.fn):
            await spec.fn(**kwargs)
            return
        result = await asyncio.to_thread(spec.fn, **kwargs)
        if inspect.isawaitable(result):
            await result

    async def __aenter__(self) -> CronScheduler:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
