"""The orchestration dispatcher: claim instances, run one step each, commit each step atomically."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from durafn.app import App
from durafn.errors import FunctionNotFoundError
from durafn.functions import FunctionKind
from durafn.replay.executor import OrchestrationExecutor
from durafn.runtime.cache import ExecutorCache
from durafn.runtime.config import RuntimeConfig
from durafn.runtime.signals import Signals, wait
from durafn.runtime.steps import (
    missing_orchestrator_step,
    step_commit,
    terminate_commit,
    triage,
)
from durafn.store.aio import AsyncStore
from durafn.store.base import OrchestrationWorkItem, StepCommit

log = logging.getLogger("durafn.dispatcher")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock in UTC; the runtime's only source of time (the replay core has none)."""
    return datetime.now(timezone.utc)


class Dispatcher:
    """Runs orchestration steps for the instances this host claims."""

    def __init__(
        self,
        app: App,
        db: AsyncStore,
        signals: Signals,
        config: RuntimeConfig,
        worker_id: str,
        clock: Clock = utc_now,
    ) -> None:
        self._app = app
        self._db = db
        self._signals = signals
        self._config = config
        self._worker_id = worker_id
        self._clock = clock
        self.cache = ExecutorCache(config.cache_size)
        self._activities = {
            s.name.lower() for s in app.functions if s.kind is FunctionKind.ACTIVITY
        }
        self._orchestrators = {
            s.name.lower() for s in app.functions if s.kind is FunctionKind.ORCHESTRATOR
        }

    def _activity_exists(self, name: str) -> bool:
        return name.lower() in self._activities

    def _orchestrator_exists(self, name: str) -> bool:
        return name.lower() in self._orchestrators

    async def run(self, stopping: asyncio.Event) -> None:
        """Claim and process work until ``stopping`` is set."""
        while not stopping.is_set():
            try:
                processed = await self.run_once()
            except Exception:
                log.exception("orchestration dispatcher round failed; retrying")
                processed = 0
                await asyncio.sleep(self._config.poll_interval)
            if not processed:
                await wait(self._signals.orchestrations, self._config.poll_interval)

    async def run_once(self) -> int:
        """One round: claim a batch and commit a step for each; the number processed."""
        now = self._clock()
        lease_until = now + timedelta(seconds=self._config.lease_seconds)
        store = self._db.store
        items = await self._db.run(
            store.claim_orchestrations,
            self._worker_id,
            now,
            lease_until,
            self._config.orchestration_batch,
        )
        failed = False
        for item in items:
            try:
                await self._process(item)
            except Exception:
                # give the instance back rather than holding it under a lease we keep renewing
                log.exception("step for %s failed; it will be retried", item.instance.instance_id)
                failed = True
                self.cache.evict(item.instance.instance_id)
                await self._db.run(
                    store.abandon_orchestration, item.instance.instance_id, self._worker_id
                )
        if failed:
            # a step that fails every time must not spin: retry at the polling pace
            await asyncio.sleep(self._config.poll_interval)
        return len(items)

    async def _process(self, item: OrchestrationWorkItem) -> None:
        instance = item.instance
        now = self._clock()
        tri = triage(item, now)
        if tri.terminated is not None:
            commit = terminate_commit(item, tri, self._worker_id, now)
            self.cache.evict(instance.instance_id)
            await self._commit(commit, now)
            return
        executor = await self._executor_for(item)
        if executor is None:
            message = str(FunctionNotFoundError("orchestrator", instance.name))
            step = missing_orchestrator_step(instance.name, message)
        else:
            step = executor.apply(tri.events)
        commit = step_commit(
            item,
            tri,
            step,
            self._worker_id,
            now,
            activity_exists=self._activity_exists,
            orchestrator_exists=self._orchestrator_exists,
        )
        if executor is not None and not step.done and commit.new_execution_id is None:
            length = instance.history_length + len(commit.history)
            self.cache.put(instance.instance_id, instance.execution_id, length, executor)
        else:
            self.cache.evict(instance.instance_id)
        await self._commit(commit, now)

    async def _executor_for(self, item: OrchestrationWorkItem) -> OrchestrationExecutor | None:
        instance = item.instance
        cached = self.cache.get(
            instance.instance_id, instance.execution_id, instance.history_length
        )
        if cached is not None:
            return cached
        try:
            spec = self._app.get_function(FunctionKind.ORCHESTRATOR, instance.name)
        except FunctionNotFoundError:
            return None
        history = (
            await self._db.run(self._db.store.get_history, instance.instance_id)
            if instance.history_length
            else []
        )
        return OrchestrationExecutor(
            spec.fn,
            instance_id=instance.instance_id,
            history=history,
            context_name=spec.context_name,
        )

    async def _commit(self, commit: StepCommit, now: datetime) -> None:
        ok = await self._db.run(self._db.store.commit_step, commit, now)
        if not ok:
            # another host took the instance over, or it was terminated meanwhile
            self.cache.evict(commit.instance_id)
            log.info("step for %s was not committed: its lease was lost", commit.instance_id)
            return
        if commit.activities or commit.messages or commit.sub_orchestrations:
            self._signals.work_added()
        if any(m.visible_at is not None for m in commit.messages):
            self._signals.timers.set()
        self._signals.instance_changed(commit.instance_id)
