"""The orchestration dispatcher: claim instances, run one step each, commit each step atomically."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from durafn.app import App
from durafn.errors import FunctionNotFoundError
from durafn.functions import FunctionKind
from durafn.models import FINAL_STATUSES, OrchestrationRuntimeStatus
from durafn.replay.executor import OrchestrationExecutor, Step
from durafn.replay.history import ExecutionStarted, HistoryEvent, OrchestratorStarted
from durafn.runtime.cache import ExecutorCache
from durafn.runtime.config import RuntimeConfig
from durafn.runtime.signals import Signals, wait
from durafn.runtime.steps import (
    Running,
    Triage,
    missing_orchestrator_step,
    step_commit,
    terminate_commit,
    triage,
)
from durafn.store.aio import AsyncStore
from durafn.store.base import (
    ActivityWorkItem,
    InstanceRecord,
    NewInstance,
    OrchestrationWorkItem,
    StepCommit,
)

if TYPE_CHECKING:
    from durafn.runtime.activities import ActivityWorker

log = logging.getLogger("durafn.dispatcher")


class Dispatcher:
    """Runs orchestration steps for the instances this host claims."""

    def __init__(
        self,
        app: App,
        db: AsyncStore,
        signals: Signals,
        config: RuntimeConfig,
        worker_id: str,
    ) -> None:
        self._app = app
        self._db = db
        self._signals = signals
        self._config = config
        self._worker_id = worker_id
        self._clock = db.clock
        self.cache = ExecutorCache(config.cache_size)
        self.activities: ActivityWorker | None = None
        """Where activities the dispatcher's commits lease to this host are run."""
        self._starting = False  # a start with its first step is under way (see start_instance)
        self._committing: set[str] = set()  # instances whose step is being committed
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

    def holds(self, instance_id: str) -> bool:
        """Whether the instance runs live here, unfinished: its executor is cached or its step is
        being committed, so its finish, unless another host takes it over, is committed here.
        """
        return instance_id in self.cache or instance_id in self._committing

    async def run(self, stopping: asyncio.Event) -> None:
        """Claim and process work until ``stopping`` is set."""
        while not stopping.is_set():
            try:
                more = await self.run_once()
            except Exception:
                log.exception("orchestration dispatcher round failed; retrying")
                more = False
                await asyncio.sleep(self._config.poll_interval)
            if not more:
                # returns at once if work was added while the round ran
                await wait(self._signals.orchestrations, self._config.poll_interval)

    async def run_once(self) -> bool:
        """One round: claim a batch and commit a step for each; True if the claim was full (more
        work may be waiting).
        """
        now = self._clock()
        lease_until = now + timedelta(seconds=self._config.lease_seconds)
        store = self._db.store
        limit = self._config.orchestration_batch
        items = await self._db.run(
            store.claim_orchestrations, self._worker_id, now, lease_until, limit
        )
        failed = False
        for item in items:
            try:
                await self._process(item)
            except Exception:
                # give the instance back rather than holding it under a lease we keep renewing
                log.exception("step for %s failed; it will be retried", item.instance.instance_id)
                failed = True
                await self._db.run(
                    store.abandon_orchestration, item.instance.instance_id, self._worker_id
                )
        if failed:
            # a step that fails every time must not spin: retry at the polling pace
            await asyncio.sleep(self._config.poll_interval)
        return len(items) >= limit

    async def _process(self, item: OrchestrationWorkItem) -> None:
        instance = item.instance
        now = self._clock()
        tri = triage(item, now)
        if tri.terminated is not None:
            commit = terminate_commit(item, tri, self._worker_id, now)
            self.cache.evict(instance.instance_id)
            await self._commit(commit, now, instance, None)
            return
        executor = await self._executor_for(instance)
        step = _apply(executor, instance.name, tri.events)
        commit = self._step_commit(instance, tri, step, now)
        await self._commit(commit, now, instance, None if step.done else executor)

    async def start_instance(
        self, instance_id: str, name: str, input: str | None, execution_id: str, now: datetime
    ) -> bool:
        """Create an instance started in this process together with its first step, one
        transaction instead of a start, a claim and a commit. Raises InstanceExistsError while
        the id is active.

        Only while no other start is under way: under a burst of starts, a start is faster
        acknowledged as a plain create, and the dispatcher then runs the first steps in batches.
        False then, and the caller creates the instance itself.
        """
        if self._starting:
            return False
        self._starting = True
        try:
            return await self._start_instance(instance_id, name, input, execution_id, now)
        finally:
            self._starting = False

    async def _start_instance(
        self, instance_id: str, name: str, input: str | None, execution_id: str, now: datetime
    ) -> bool:
        record = InstanceRecord(
            instance_id=instance_id,
            name=name,
            execution_id=execution_id,
            status=OrchestrationRuntimeStatus.Pending,
            input=input,
            output=None,
            custom_status=None,
            created_time=now,
            last_updated_time=now,
        )
        started = ExecutionStarted(timestamp=now, name=name, input=input, execution_id=execution_id)
        tri = Triage(events=[OrchestratorStarted(timestamp=now), started])
        # not from the cache: a live executor under this id belongs to a running instance,
        # which this start will find active (InstanceExistsError) and must leave alone
        executor = self._new_executor(record, [])
        step = _apply(executor, name, tri.events)
        commit = self._step_commit(record, tri, step, now)
        commit.new_instance = NewInstance(name, input)
        return await self._commit(commit, now, record, None if step.done else executor)

    async def step_on_result(self, item: ActivityWorkItem, event: HistoryEvent) -> bool:
        """Run the next step of ``item``'s instance on the activity's result straight away, when
        its live executor is at hand: the result, the step and the next activities are then one
        transaction instead of an inbox message, a claim and a commit. False when it cannot
        (the caller then puts the result in the inbox).
        """
        entry = self.cache.take_any(item.instance_id)
        if entry is None:
            return False
        record = entry.record
        if record.execution_id != item.execution_id or record.status is not Running:
            return False
        now = self._clock()
        tri = Triage(events=[OrchestratorStarted(timestamp=now), event])
        step = entry.executor.apply(tri.events)
        commit = self._step_commit(record, tri, step, now)
        commit.activity_result = item.id
        return await self._commit(commit, now, record, None if step.done else entry.executor)

    def _step_commit(
        self, instance: InstanceRecord, tri: Triage, step: Step, now: datetime
    ) -> StepCommit:
        return step_commit(
            instance,
            tri,
            step,
            self._worker_id,
            now,
            activity_exists=self._activity_exists,
            orchestrator_exists=self._orchestrator_exists,
        )

    async def _executor_for(self, instance: InstanceRecord) -> OrchestrationExecutor | None:
        cached = self.cache.take(instance)
        if cached is not None:
            return cached.executor
        if not self._orchestrator_exists(instance.name):
            return None
        history = (
            await self._db.run(self._db.store.get_history, instance.instance_id)
            if instance.history_length
            else []
        )
        return self._new_executor(instance, history)

    def _new_executor(
        self, instance: InstanceRecord, history: list[HistoryEvent]
    ) -> OrchestrationExecutor | None:
        """An executor replayed to ``history``; None when the orchestrator is not in the app."""
        try:
            spec = self._app.get_function(FunctionKind.ORCHESTRATOR, instance.name)
        except FunctionNotFoundError:
            return None
        return OrchestrationExecutor(
            spec.fn,
            instance_id=instance.instance_id,
            history=history,
            context_name=spec.context_name,
        )

    async def _commit(
        self,
        commit: StepCommit,
        now: datetime,
        instance: InstanceRecord,
        executor: OrchestrationExecutor | None,
    ) -> bool:
        """Commit the step; on success keep ``executor`` (None: the instance is done with it) for
        the next step and start the activities the step leased to this host.
        """
        worker = self.activities
        if worker is not None and commit.activities:
            commit.lease_activities = worker.reserve(len(commit.activities))
            commit.lease_until = now + timedelta(seconds=self._config.lease_seconds)
        leased = None
        self._committing.add(commit.instance_id)
        try:
            leased = await self._db.run(self._db.store.commit_step, commit, now)
        finally:
            self._committing.discard(commit.instance_id)
            if worker is not None:
                worker.start(leased or [], reserved=commit.lease_activities)
        if leased is None:
            # another host took the instance over, it was terminated meanwhile, or (a step on an
            # activity result) other messages came first: the executor is past the stored state
            self.cache.evict(commit.instance_id)
            log.debug("step for %s was not committed", commit.instance_id)
            return False
        after = dataclasses.replace(
            instance,
            status=commit.status,
            output=commit.output,
            custom_status=commit.custom_status,
            last_updated_time=now,
            history_length=instance.history_length + len(commit.history),
        )
        if executor is not None and commit.new_execution_id is None:
            self.cache.put(after, executor)
        self._signals.announce(commit.work(now))
        if commit.status in FINAL_STATUSES:
            self._signals.instance_finished(after)
        return True


def _apply(executor: OrchestrationExecutor | None, name: str, events: list[HistoryEvent]) -> Step:
    """The executor's step on ``events``; with no executor (orchestrator ``name`` is not in the
    app), a step that fails the instance.
    """
    if executor is None:
        return missing_orchestrator_step(name, str(FunctionNotFoundError("orchestrator", name)))
    return executor.apply(events)
