"""Determinism and cost: replay checked against history, and one resumption per live step."""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime, timedelta, timezone
from typing import Any

from durafn.models import FailureDetails, OrchestrationRuntimeStatus
from durafn.replay import DurableOrchestrationContext, OrchestrationExecutor, Step, Task
from durafn.replay.actions import (
    Action,
    CompleteOrchestration,
    FailOrchestration,
    ScheduleActivity,
)
from durafn.replay.history import (
    ExecutionCompleted,
    ExecutionStarted,
    HistoryEvent,
    OrchestratorStarted,
    SubOrchestrationInstanceCreated,
    TaskCompleted,
    TaskScheduled,
)
from durafn.serialization import encode

Ctx = DurableOrchestrationContext
Gen = Generator[Task, Any, Any]
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def completed(task_id: int, value: Any = None) -> TaskCompleted:
    return TaskCompleted(timestamp=T0, task_id=task_id, result=encode(value, "result"))


def activity(task_id: int, name: str, value: Any = None) -> ScheduleActivity:
    return ScheduleActivity(task_id, name, encode(value, "input"))


def complete(value: Any) -> CompleteOrchestration:
    return CompleteOrchestration(encode(value, "output"))


def record(action: Action) -> HistoryEvent:
    """The event the runtime appends for an action (only the kinds these tests produce)."""
    if isinstance(action, ScheduleActivity):
        return TaskScheduled(timestamp=T0, task_id=action.task_id, name=action.name)
    assert isinstance(action, CompleteOrchestration)
    return ExecutionCompleted(
        timestamp=T0, status=OrchestrationRuntimeStatus.Completed, result=action.result
    )


def only_failure(step: Step) -> FailureDetails:
    assert step.done
    assert len(step.actions) == 1
    action = step.actions[0]
    assert isinstance(action, FailOrchestration)
    return action.failure


def hello_chain(context: Ctx) -> Gen:
    a = yield context.call_activity("say_hello", "Tokyo")
    b = yield context.call_activity("say_hello", "Seattle")
    return [a, b]


# -- nondeterminism ---------------------------------------------------------------------------


def started_history(*after: HistoryEvent) -> list[HistoryEvent]:
    return [OrchestratorStarted(timestamp=T0), ExecutionStarted(timestamp=T0, name="orch"), *after]


def test_changed_activity_name_is_a_non_determinism_error() -> None:
    def orch(context: Ctx) -> Gen:
        yield context.call_activity("say_bye")

    history = started_history(TaskScheduled(timestamp=T0, task_id=0, name="say_hello"))
    details = only_failure(OrchestrationExecutor(orch, instance_id="i", history=history).apply([]))
    assert details.error_type == "NonDeterminismError"
    assert "task id 0" in details.message
    assert "history holds activity 'say_hello'" in details.message
    assert "the code produced activity 'say_bye'" in details.message


def test_a_timer_where_history_has_an_activity_is_a_non_determinism_error() -> None:
    def orch(context: Ctx) -> Gen:
        yield context.call_activity("a")
        yield context.create_timer(context.current_utc_datetime + timedelta(hours=1))

    history = started_history(
        TaskScheduled(timestamp=T0, task_id=0, name="a"),
        OrchestratorStarted(timestamp=T0),
        completed(0),
        TaskScheduled(timestamp=T0, task_id=1, name="say_hello"),
    )
    executor = OrchestrationExecutor(orch, instance_id="i", history=history)
    details = only_failure(executor.apply([OrchestratorStarted(timestamp=T0), completed(1)]))
    assert details.error_type == "NonDeterminismError"
    assert "at step 1" in details.message
    assert "history holds activity 'say_hello', but the code produced a timer" in details.message


def test_history_step_the_code_no_longer_takes_is_a_non_determinism_error() -> None:
    def orch(context: Ctx) -> Gen:
        yield context.call_activity("a")
        return "done early"

    history = started_history(
        TaskScheduled(timestamp=T0, task_id=0, name="a"),
        OrchestratorStarted(timestamp=T0),
        completed(0),
        TaskScheduled(timestamp=T0, task_id=1, name="b"),
    )
    details = only_failure(OrchestrationExecutor(orch, instance_id="i", history=history).apply([]))
    assert "history holds activity 'b'" in details.message
    assert "nothing: the orchestrator did not schedule it" in details.message


def test_sub_orchestration_name_change_is_detected() -> None:
    def orch(context: Ctx) -> Gen:
        yield context.call_sub_orchestrator("new_child")

    created = SubOrchestrationInstanceCreated(
        timestamp=T0, task_id=0, name="old_child", instance_id="i:0"
    )
    executor = OrchestrationExecutor(orch, instance_id="i", history=started_history(created))
    details = only_failure(executor.apply([]))
    assert "sub-orchestration 'old_child'" in details.message
    assert "sub-orchestration 'new_child'" in details.message


def test_actions_the_history_lacks_are_returned_after_replay() -> None:
    executor = OrchestrationExecutor(hello_chain, instance_id="i", history=started_history())
    assert executor.apply([]).actions == [activity(0, "say_hello", "Tokyo")]
    assert executor.apply([]).actions == []


# -- cost -------------------------------------------------------------------------------------


def test_a_live_executor_resumes_the_generator_once_per_step_without_replay() -> None:
    steps = 2000
    calls = {"orchestrator": 0, "resumptions": 0}

    def orch(context: Ctx) -> Gen:
        calls["orchestrator"] += 1
        total = 0
        for i in range(steps):
            total += yield context.call_activity("step", i)
            calls["resumptions"] += 1
        return total

    executor = OrchestrationExecutor(orch, instance_id="long")
    applied = 2
    first = executor.apply(
        [OrchestratorStarted(timestamp=T0), ExecutionStarted(timestamp=T0, name="o")]
    )
    assert first.actions == [activity(0, "step", 0)]
    history: list[HistoryEvent] = [
        OrchestratorStarted(timestamp=T0),
        ExecutionStarted(timestamp=T0, name="o"),
        TaskScheduled(timestamp=T0, task_id=0, name="step"),
    ]
    for i in range(steps):
        new = [OrchestratorStarted(timestamp=T0), completed(i, 1)]
        step = executor.apply(new)
        assert calls["resumptions"] == i + 1
        expected = [activity(i + 1, "step", i + 1)] if i + 1 < steps else [complete(steps)]
        assert step.actions == expected
        history += new + [record(action) for action in step.actions]
        applied += len(new)
    assert calls["orchestrator"] == 1
    assert executor.history_length == applied

    # An evicted executor replays the whole history once: again one resumption per step.
    rebuilt = OrchestrationExecutor(orch, instance_id="long", history=history)
    assert calls == {"orchestrator": 2, "resumptions": 2 * steps}
    assert rebuilt.done
    assert rebuilt.apply([]).actions == []
