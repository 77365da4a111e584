"""Turn a claimed work item and the executor's decisions into one StepCommit (no I/O)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from durafn.models import FailureDetails, OrchestrationRuntimeStatus
from durafn.replay.actions import (
    Action,
    CompleteOrchestration,
    ContinueOrchestrationAsNew,
    CreateTimer,
    FailOrchestration,
    ScheduleActivity,
    StartSubOrchestration,
)
from durafn.replay.executor import Step
from durafn.replay.history import (
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    OrchestratorStarted,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from durafn.serialization import encode
from durafn.store.base import (
    InstanceRecord,
    NewActivity,
    NewMessage,
    NewSubOrchestration,
    OrchestrationWorkItem,
    StepCommit,
)

Running = OrchestrationRuntimeStatus.Running
Suspended = OrchestrationRuntimeStatus.Suspended
Completed = OrchestrationRuntimeStatus.Completed
Failed = OrchestrationRuntimeStatus.Failed


@dataclass
class Triage:
    """The claimed messages sorted out: what the executor sees, and whether to terminate."""

    consumed: list[int] = field(default_factory=list)
    events: list[HistoryEvent] = field(default_factory=list)
    status: OrchestrationRuntimeStatus = Running
    terminated: ExecutionTerminated | None = None


def triage(item: OrchestrationWorkItem, now: datetime) -> Triage:
    """Apply suspend/resume/terminate in arrival order; a suspended instance leaves other messages
    in its inbox for after it is resumed.
    """
    status = item.instance.status
    result = Triage(events=[OrchestratorStarted(timestamp=now)])
    for message in item.messages:
        event = message.event
        if isinstance(event, ExecutionTerminated):
            result.consumed.append(message.id)
            result.terminated = event
            break
        if isinstance(event, ExecutionSuspended):
            if status is Suspended:
                result.consumed.append(message.id)
                continue
            status = Suspended
        elif isinstance(event, ExecutionResumed):
            if status is not Suspended:
                result.consumed.append(message.id)
                continue
            status = Running
        elif status is Suspended:
            continue
        result.consumed.append(message.id)
        result.events.append(event)
    result.status = Running if status is OrchestrationRuntimeStatus.Pending else status
    return result


def _parent_message(
    instance: InstanceRecord,
    outcome: SubOrchestrationInstanceCompleted | SubOrchestrationInstanceFailed,
) -> list[NewMessage]:
    if instance.parent_instance_id is None:
        return []
    return [NewMessage(instance_id=instance.parent_instance_id, event=outcome)]


def terminate_commit(
    item: OrchestrationWorkItem, tri: Triage, worker_id: str, now: datetime
) -> StepCommit:
    """The commit that ends an instance as Terminated, its output the reason given."""
    assert tri.terminated is not None
    instance = item.instance
    reason = tri.terminated.reason
    failure = FailureDetails(
        "Terminated", reason or "the instance was terminated", "", instance.name
    )
    parent_task = instance.parent_task_id or 0
    return StepCommit(
        instance_id=instance.instance_id,
        execution_id=instance.execution_id,
        worker_id=worker_id,
        consumed=tri.consumed,
        history=[OrchestratorStarted(timestamp=now), tri.terminated],
        status=OrchestrationRuntimeStatus.Terminated,
        output=encode(reason, "termination reason"),
        custom_status=instance.custom_status,
        messages=_parent_message(
            instance,
            SubOrchestrationInstanceFailed(timestamp=now, task_id=parent_task, failure=failure),
        ),
    )


def missing_orchestrator_step(name: str, message: str) -> Step:
    """The step of an instance whose orchestrator is not registered in this app: it fails."""
    failure = FailureDetails("FunctionNotFoundError", message, "", name)
    return Step(actions=[FailOrchestration(failure)], custom_status=None, done=True)


@dataclass
class _Builder:
    instance: InstanceRecord
    now: datetime
    activity_exists: Callable[[str], bool]
    orchestrator_exists: Callable[[str], bool]
    history: list[HistoryEvent] = field(default_factory=list)
    activities: list[NewActivity] = field(default_factory=list)
    messages: list[NewMessage] = field(default_factory=list)
    children: list[NewSubOrchestration] = field(default_factory=list)

    def to_self(self, event: HistoryEvent, visible_at: datetime | None = None) -> None:
        self.messages.append(
            NewMessage(
                instance_id=self.instance.instance_id,
                event=event,
                visible_at=visible_at,
                execution_id=self.instance.execution_id,
            )
        )

    def not_found(self, kind: str, name: str) -> FailureDetails:
        return FailureDetails(
            "FunctionNotFoundError",
            f"no {kind} named '{name}' is registered in the function app",
            "",
            name,
        )

    def schedule(self, action: Action) -> None:
        now = self.now
        if isinstance(action, ScheduleActivity):
            self.history.append(
                TaskScheduled(
                    timestamp=now, task_id=action.task_id, name=action.name, input=action.input
                )
            )
            if self.activity_exists(action.name):
                self.activities.append(NewActivity(action.task_id, action.name, action.input))
            else:
                failure = self.not_found("activity", action.name)
                self.to_self(TaskFailed(timestamp=now, task_id=action.task_id, failure=failure))
        elif isinstance(action, CreateTimer):
            self.history.append(
                TimerCreated(timestamp=now, task_id=action.task_id, fire_at=action.fire_at)
            )
            fired = TimerFired(
                timestamp=action.fire_at, task_id=action.task_id, fire_at=action.fire_at
            )
            self.to_self(fired, visible_at=action.fire_at)
        elif isinstance(action, StartSubOrchestration):
            self.history.append(
                SubOrchestrationInstanceCreated(
                    timestamp=now,
                    task_id=action.task_id,
                    name=action.name,
                    instance_id=action.instance_id,
                    input=action.input,
                )
            )
            if self.orchestrator_exists(action.name):
                self.children.append(
                    NewSubOrchestration(
                        instance_id=action.instance_id,
                        name=action.name,
                        input=action.input,
                        execution_id=uuid.uuid4().hex,
                        parent_task_id=action.task_id,
                    )
                )
            else:
                failure = self.not_found("orchestrator", action.name)
                self.to_self(
                    SubOrchestrationInstanceFailed(
                        timestamp=now, task_id=action.task_id, failure=failure
                    )
                )


def step_commit(
    instance: InstanceRecord,
    tri: Triage,
    step: Step,
    worker_id: str,
    now: datetime,
    *,
    activity_exists: Callable[[str], bool],
    orchestrator_exists: Callable[[str], bool],
) -> StepCommit:
    """The commit recording ``tri.events`` and the executor's decisions, in one transaction,
    refused if ``instance``'s stored history has changed meanwhile.
    """
    builder = _Builder(
        instance, now, activity_exists, orchestrator_exists, history=list(tri.events)
    )
    commit = StepCommit(
        instance_id=instance.instance_id,
        execution_id=instance.execution_id,
        worker_id=worker_id,
        consumed=tri.consumed,
        history=builder.history,
        status=tri.status,
        output=instance.output,
        custom_status=step.custom_status,
        activities=builder.activities,
        messages=builder.messages,
        sub_orchestrations=builder.children,
        history_length=instance.history_length,
    )
    parent_task = instance.parent_task_id or 0
    for action in step.actions:
        if isinstance(action, CompleteOrchestration):
            _finish(
                commit,
                builder,
                ExecutionCompleted(timestamp=now, status=Completed, result=action.result),
                action.result,
                SubOrchestrationInstanceCompleted(
                    timestamp=now, task_id=parent_task, result=action.result
                ),
            )
        elif isinstance(action, FailOrchestration):
            _finish(
                commit,
                builder,
                ExecutionCompleted(timestamp=now, status=Failed, failure=action.failure),
                json.dumps(action.failure.to_json()),
                SubOrchestrationInstanceFailed(
                    timestamp=now, task_id=parent_task, failure=action.failure
                ),
            )
        elif isinstance(action, ContinueOrchestrationAsNew):
            _continue_as_new(commit, builder, action, now)
        else:
            builder.schedule(action)
    return commit


def _finish(
    commit: StepCommit,
    builder: _Builder,
    completed: ExecutionCompleted,
    output: str | None,
    outcome: SubOrchestrationInstanceCompleted | SubOrchestrationInstanceFailed,
) -> None:
    """End the instance with ``completed`` and tell its parent, if it has one."""
    builder.history.append(completed)
    commit.status = completed.status
    commit.output = output
    builder.messages.extend(_parent_message(builder.instance, outcome))


def _continue_as_new(
    commit: StepCommit, builder: _Builder, action: ContinueOrchestrationAsNew, now: datetime
) -> None:
    """Replace the history: the new execution starts from an ExecutionStarted message, followed by
    the events the old one received but never consumed.
    """
    instance = builder.instance
    new_execution = uuid.uuid4().hex
    commit.new_execution_id = new_execution
    commit.new_input = action.input
    commit.history = []
    commit.activities = []
    commit.sub_orchestrations = []
    commit.status = Running
    started = ExecutionStarted(
        timestamp=now,
        name=instance.name,
        input=action.input,
        execution_id=new_execution,
        parent_instance_id=instance.parent_instance_id,
        parent_task_id=instance.parent_task_id,
    )
    commit.messages = [
        NewMessage(instance_id=instance.instance_id, event=event, execution_id=new_execution)
        for event in (started, *action.carryover_events)
    ]
