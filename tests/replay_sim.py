"""A tiny stand-in for the runtime, shared by the replay tests: it steps a live executor and,
at every step, one rebuilt from the history so far, and records actions as the runtime would."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from durafn.models import OrchestrationRuntimeStatus
from durafn.replay import OrchestrationExecutor, Step
from durafn.replay.actions import (
    Action,
    CompleteOrchestration,
    CreateTimer,
    FailOrchestration,
    ScheduleActivity,
    StartSubOrchestration,
)
from durafn.replay.history import (
    ContinueAsNew,
    ExecutionCompleted,
    ExecutionStarted,
    HistoryEvent,
    OrchestratorStarted,
    SubOrchestrationInstanceCreated,
    TaskScheduled,
    TimerCreated,
)
from durafn.serialization import encode

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def record(action: Action, at: datetime) -> HistoryEvent:
    """The event the runtime appends to history for an action it was given."""
    if isinstance(action, ScheduleActivity):
        return TaskScheduled(timestamp=at, task_id=action.task_id, name=action.name)
    if isinstance(action, CreateTimer):
        return TimerCreated(timestamp=at, task_id=action.task_id, fire_at=action.fire_at)
    if isinstance(action, StartSubOrchestration):
        return SubOrchestrationInstanceCreated(
            timestamp=at, task_id=action.task_id, name=action.name, instance_id=action.instance_id
        )
    if isinstance(action, CompleteOrchestration):
        return ExecutionCompleted(
            timestamp=at, status=OrchestrationRuntimeStatus.Completed, result=action.result
        )
    if isinstance(action, FailOrchestration):
        return ExecutionCompleted(
            timestamp=at, status=OrchestrationRuntimeStatus.Failed, failure=action.failure
        )
    return ContinueAsNew(timestamp=at, input=action.input)


class Sim:
    """Steps a live executor and, at every step, one rebuilt from the history so far.

    Both must decide exactly the same; returned actions are recorded as the runtime would.
    """

    def __init__(self, orchestrator: Callable[..., Any], name: str = "orch", **kw: Any) -> None:
        self.orchestrator = orchestrator
        self.name = name
        self.kw: dict[str, Any] = {"instance_id": "inst", **kw}
        self.history: list[HistoryEvent] = []
        self.now = T0
        self.live = OrchestrationExecutor(orchestrator, **self.kw)

    def step(self, *events: HistoryEvent) -> Step:
        new = [OrchestratorStarted(timestamp=self.now), *events]
        rebuilt = OrchestrationExecutor(self.orchestrator, history=self.history, **self.kw)
        step = self.live.apply(new)
        assert rebuilt.apply(new) == step
        self.history += new
        self.history += [record(action, self.now) for action in step.actions]
        self.now += timedelta(seconds=1)
        return step

    def start(
        self, value: Any = None, *, events: tuple[HistoryEvent, ...] = (), **fields: Any
    ) -> Step:
        started = ExecutionStarted(
            timestamp=self.now,
            name=self.name,
            input=encode(value, "input"),
            execution_id="exec-1",
            **fields,
        )
        return self.step(started, *events)

    def replay_all(self) -> OrchestrationExecutor:
        executor = OrchestrationExecutor(self.orchestrator, history=self.history, **self.kw)
        assert executor.history_length == len(self.history)
        return executor
