"""DurableOrchestrationContext: inputs, time, ids, status, events, timers and retries."""

from __future__ import annotations

import uuid
from collections.abc import Generator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from replay_sim import T0, Sim

from durafn.errors import SerializationError, TaskFailedError
from durafn.models import FailureDetails, RetryOptions
from durafn.replay import (
    FUNCTION_NAME_ATTR,
    DurableOrchestrationContext,
    OrchestrationExecutor,
    Step,
    Task,
    function_name,
)
from durafn.replay.actions import (
    CompleteOrchestration,
    CreateTimer,
    FailOrchestration,
    ScheduleActivity,
    StartSubOrchestration,
)
from durafn.replay.context import UUID_NAMESPACE
from durafn.replay.history import (
    EventRaised,
    ExecutionStarted,
    OrchestratorStarted,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TimerFired,
)
from durafn.serialization import encode

Ctx = DurableOrchestrationContext
Gen = Generator[Task, Any, Any]
SECOND = timedelta(seconds=1)


def completed(task_id: int, value: Any = None) -> TaskCompleted:
    return TaskCompleted(timestamp=T0, task_id=task_id, result=encode(value, "result"))


def failed(task_id: int, message: str = "boom") -> TaskFailed:
    details = FailureDetails("ValueError", message, "Traceback (remote)\n", "act")
    return TaskFailed(timestamp=T0, task_id=task_id, failure=details)


def fired(task_id: int) -> TimerFired:
    return TimerFired(timestamp=T0, task_id=task_id, fire_at=T0)


def raised(name: str, value: Any = None) -> EventRaised:
    return EventRaised(timestamp=T0, name=name, input=encode(value, "event"))


def activity(task_id: int, name: str, value: Any = None) -> ScheduleActivity:
    return ScheduleActivity(task_id, name, encode(value, "input"))


def complete(value: Any) -> CompleteOrchestration:
    return CompleteOrchestration(encode(value, "output"))


# -- names and inputs -------------------------------------------------------------------------


def test_function_name_accepts_names_registered_functions_and_plain_functions() -> None:
    def plain() -> None: ...

    def registered() -> None: ...

    setattr(registered, FUNCTION_NAME_ATTR, "custom")
    assert function_name("by_name") == "by_name"
    assert function_name(plain) == "plain"
    assert function_name(registered) == "custom"
    with pytest.raises(TypeError, match=r"function name \(str\) or a function.*got int 42"):
        function_name(42)  # type: ignore[arg-type]


def test_inputs_accept_input_underscore_input_keyword_and_positional() -> None:
    options = RetryOptions(1000, 2)

    def orch(context: Ctx) -> Gen:
        context.call_activity("f", 5)
        context.call_activity("f", input_=5)
        context.call_activity("f", input=5)
        context.call_activity_with_retry("f", options, input=5)
        context.call_sub_orchestrator("child", 5, "kid")
        context.call_sub_orchestrator_with_retry("child", options, input=5, instance_id="kid")
        with pytest.raises(TypeError, match="both input_ and input"):
            context.call_activity("f", 1, input=2)
        yield context.call_activity("f")

    assert Sim(orch).start().actions == [
        *(activity(i, "f", 5) for i in range(4)),
        StartSubOrchestration(4, "child", "kid", "5"),
        StartSubOrchestration(5, "child", "kid", "5"),
        activity(6, "f"),
    ]


@dataclass
class Order:
    item: str
    quantity: int


def test_get_input_decodes_and_converts_to_a_requested_type() -> None:
    def orch(context: Ctx) -> Gen:
        raw = context.get_input()
        order = context.get_input(Order)
        assert isinstance(order, Order)
        yield context.call_activity("ship", order)
        return [raw, context.instance_id]

    sim = Sim(orch, instance_id="order-1")
    assert sim.start({"item": "tea", "quantity": 2}).actions == [
        activity(0, "ship", {"item": "tea", "quantity": 2})
    ]
    assert sim.step(completed(0)).actions == [complete([{"item": "tea", "quantity": 2}, "order-1"])]


# -- determinism: time, ids, replay flag ------------------------------------------------------


def test_new_uuid_and_current_utc_datetime_are_the_same_on_replay() -> None:
    def orch(context: Ctx) -> Gen:
        seen = [[context.new_uuid(), context.new_uuid(), context.current_utc_datetime.isoformat()]]
        yield context.call_activity("a")
        seen.append([context.new_uuid(), context.current_utc_datetime.isoformat()])
        yield context.call_activity("b")
        seen.append([context.new_uuid(), context.current_utc_datetime.isoformat()])
        return seen

    sim = Sim(orch)
    sim.start()
    sim.step(completed(0))
    step = sim.step(completed(1))  # Sim checks a rebuilt executor returns the very same output
    ids = [str(uuid.uuid5(UUID_NAMESPACE, f"inst:exec-1:{n}")) for n in range(4)]
    assert step.actions == [
        complete(
            [
                [ids[0], ids[1], T0.isoformat()],
                [ids[2], (T0 + SECOND).isoformat()],
                [ids[3], (T0 + 2 * SECOND).isoformat()],
            ]
        )
    ]


def test_current_utc_datetime_is_aware_utc_even_for_naive_history() -> None:
    def orch(context: Ctx) -> Gen:
        now = context.current_utc_datetime
        assert now.tzinfo is not None
        return now.isoformat()
        yield  # pragma: no cover - makes this a generator

    naive = datetime(2024, 5, 1, 12, 0)
    executor = OrchestrationExecutor(orch, instance_id="i")
    step = executor.apply(
        [OrchestratorStarted(timestamp=naive), ExecutionStarted(timestamp=naive, name="o")]
    )
    assert step.actions == [complete("2024-05-01T12:00:00+00:00")]


def test_is_replaying_is_true_for_old_history_and_false_for_new_events() -> None:
    flags: list[bool] = []

    def orch(context: Ctx) -> Gen:
        flags.append(context.is_replaying)
        yield context.call_activity("a")
        flags.append(context.is_replaying)
        yield context.call_activity("b")
        flags.append(context.is_replaying)

    sim = Sim(orch)
    sim.start()
    sim.step(completed(0))
    flags.clear()
    executor = OrchestrationExecutor(orch, instance_id="inst", history=sim.history)
    assert flags == [True, True]
    assert executor.context.is_replaying is False
    executor.apply([OrchestratorStarted(timestamp=sim.now), completed(1)])
    assert flags == [True, True, False]


# -- custom status ----------------------------------------------------------------------------


def test_custom_status_is_reported_as_json_text_and_read_back_decoded() -> None:
    def orch(context: Ctx) -> Gen:
        assert context.custom_status is None
        context.set_custom_status({"stage": 1})
        yield context.call_activity("a")
        with pytest.raises(SerializationError, match="custom status"):
            context.set_custom_status(object())
        assert context.custom_status == {"stage": 1}
        yield context.call_activity("b")
        context.set_custom_status("done")
        return None

    sim = Sim(orch)
    assert sim.start().custom_status == '{"stage":1}'
    assert sim.step(completed(0)).custom_status == '{"stage":1}'
    assert sim.step(completed(1)) == Step([complete(None)], '"done"', True)


# -- external events --------------------------------------------------------------------------


def test_events_that_arrive_before_the_wait_are_buffered() -> None:
    def orch(context: Ctx) -> Gen:
        yield context.call_activity("a")
        approval = yield context.wait_for_external_event("Approval")
        return approval

    sim = Sim(orch)
    sim.start()
    assert sim.step(raised("Approval", {"ok": True})).actions == []
    assert sim.step(completed(0)).actions == [complete({"ok": True})]


def test_an_event_raised_before_the_instance_started_is_kept() -> None:
    def orch(context: Ctx) -> Gen:
        value = yield context.wait_for_external_event("go")
        return value

    sim = Sim(orch)
    # The event precedes ExecutionStarted in the very first step.
    step = sim.step(raised("go", 1), ExecutionStarted(timestamp=T0, name="orch"))
    assert step.actions == [complete(1)]


def test_several_waits_on_one_name_get_events_in_arrival_order_case_insensitively() -> None:
    def orch(context: Ctx) -> Gen:
        first = context.wait_for_external_event("Vote")
        second = context.wait_for_external_event("VOTE")
        third = context.wait_for_external_event("vote")
        results = yield context.task_all([third, second, first])
        return results

    sim = Sim(orch)
    sim.start()
    assert sim.step(raised("vote", "a"), raised("Vote", "b")).actions == []
    assert sim.step(raised("other", "x"), raised("vOtE", "c")).actions == [
        complete(["c", "b", "a"])
    ]


# -- timers -----------------------------------------------------------------------------------


def test_timer_is_created_and_fires() -> None:
    def orch(context: Ctx) -> Gen:
        due = context.current_utc_datetime + timedelta(hours=1)
        fired_value = yield context.create_timer(due)
        naive = yield context.create_timer(datetime(2030, 1, 1))
        return [fired_value, naive]

    sim = Sim(orch)
    assert sim.start().actions == [CreateTimer(0, T0 + timedelta(hours=1))]
    # An outcome of another kind with the timer's id (a stale message) is ignored.
    assert sim.step(completed(0, "not mine")).actions == []
    assert sim.step(fired(0)).actions == [CreateTimer(1, datetime(2030, 1, 1, tzinfo=timezone.utc))]
    assert sim.step(fired(1)).actions == [complete([None, None])]


def test_create_timer_wants_a_datetime() -> None:
    def orch(context: Ctx) -> Gen:
        yield context.create_timer(60)  # type: ignore[arg-type]

    step = Sim(orch).start()
    assert isinstance(step.actions[0], FailOrchestration)
    assert "create_timer() takes a datetime" in step.actions[0].failure.message


def approval_with_timeout(context: Ctx) -> Gen:
    timer = context.create_timer(context.current_utc_datetime + timedelta(minutes=5))
    event = context.wait_for_external_event("Approval")
    winner = yield context.task_any([event, timer])
    if winner is event:
        timer.cancel()
        assert timer.is_cancelled
        done = yield context.call_activity("process", event.result)
        return [done, timer.is_completed]
    return "timed out"


def test_task_any_event_before_timer_cancels_the_timer() -> None:
    sim = Sim(approval_with_timeout)
    assert sim.start().actions == [CreateTimer(0, T0 + timedelta(minutes=5))]
    assert sim.step(raised("approval", "yes")).actions == [activity(1, "process", "yes")]
    assert sim.step(fired(0)).actions == []  # the cancelled timer's firing is ignored
    assert sim.step(completed(1, "processed")).actions == [complete(["processed", False])]


def test_task_any_timer_before_event_times_out() -> None:
    sim = Sim(approval_with_timeout)
    sim.start()
    assert sim.step(fired(0)).actions == [complete("timed out")]


# -- retries ----------------------------------------------------------------------------------


def test_retry_backoff_timers_double_up_to_the_max_interval_then_raise_the_last_error() -> None:
    options = RetryOptions(
        first_retry_interval_in_milliseconds=1000,
        max_number_of_attempts=4,
        backoff_coefficient=2.0,
        max_retry_interval_in_milliseconds=3000,
    )

    def orch(context: Ctx) -> Gen:
        try:
            yield context.call_activity_with_retry("flaky", options, "x")
        except TaskFailedError as error:
            return [error.function, error.message]
        return None

    sim = Sim(orch)
    assert sim.start().actions == [activity(0, "flaky", "x")]
    fire_at = []
    for attempt in range(3):
        failed_at = sim.now
        step = sim.step(failed(2 * attempt, f"boom {attempt + 1}"))
        (timer,) = step.actions
        assert isinstance(timer, CreateTimer)
        assert timer.task_id == 2 * attempt + 1
        fire_at.append(timer.fire_at - failed_at)
        assert sim.step(fired(timer.task_id)).actions == [activity(2 * attempt + 2, "flaky", "x")]
    assert fire_at == [timedelta(seconds=1), timedelta(seconds=2), timedelta(seconds=3)]
    assert sim.step(failed(6, "boom 4")).actions == [complete(["flaky", "boom 4"])]


def test_retry_succeeds_on_the_second_attempt() -> None:
    def orch(context: Ctx) -> Gen:
        value = yield context.call_activity_with_retry("flaky", RetryOptions(500, 3))
        return value

    sim = Sim(orch)
    sim.start()
    assert sim.step(failed(0)).actions == [CreateTimer(1, T0 + SECOND + timedelta(seconds=0.5))]
    assert sim.step(fired(1)).actions == [activity(2, "flaky")]
    assert sim.step(completed(2, "ok")).actions == [complete("ok")]


def test_retry_timeout_stops_retrying_with_the_last_error() -> None:
    options = RetryOptions(1000, 5, retry_timeout_in_milliseconds=2500)

    def orch(context: Ctx) -> Gen:
        value = yield context.call_activity_with_retry("flaky", options)
        return value

    sim = Sim(orch)
    sim.start()  # attempt 1 scheduled at T0
    assert sim.step(failed(0, "first")).actions == [CreateTimer(1, T0 + 2 * SECOND)]
    assert sim.step(fired(1)).actions == [activity(2, "flaky")]
    # Failing at T0+3s, a retry would start at T0+4s: past the 2.5 s budget.
    step = sim.step(failed(2, "second"))
    (action,) = step.actions
    assert isinstance(action, FailOrchestration)
    assert action.failure.message == "'flaky' failed with ValueError: second"


def test_sub_orchestrator_retries_reuse_the_child_instance_id() -> None:
    def orch(context: Ctx) -> Gen:
        value = yield context.call_sub_orchestrator_with_retry("child", RetryOptions(1000, 2), 7)
        return value

    def child_failed(task_id: int) -> SubOrchestrationInstanceFailed:
        details = FailureDetails("ValueError", "child broke", "", "child")
        return SubOrchestrationInstanceFailed(timestamp=T0, task_id=task_id, failure=details)

    sim = Sim(orch)
    assert sim.start().actions == [StartSubOrchestration(0, "child", "inst:0", "7")]
    assert sim.step(child_failed(0)).actions == [CreateTimer(1, T0 + 2 * SECOND)]
    assert sim.step(fired(1)).actions == [StartSubOrchestration(2, "child", "inst:0", "7")]
    (action,) = sim.step(child_failed(2)).actions
    assert isinstance(action, FailOrchestration)
    assert action.failure.message == "'child' failed with ValueError: child broke"


def test_retry_options_must_be_retry_options() -> None:
    def orch(context: Ctx) -> Gen:
        yield context.call_activity_with_retry("f", {"max": 3})  # type: ignore[arg-type]

    (action,) = Sim(orch).start().actions
    assert isinstance(action, FailOrchestration)
    assert "retry_options must be a RetryOptions" in action.failure.message


@pytest.mark.parametrize("bad", ["", "a/b", "nul\x00", "x" * 257])
def test_an_invalid_sub_orchestration_id_fails_at_the_call_site(bad: str) -> None:
    def orchestrator(context: Ctx) -> Gen:
        yield context.call_sub_orchestrator("child", None, instance_id=bad)

    step = Sim(orchestrator).start()
    [action] = step.actions
    assert isinstance(action, FailOrchestration)
    assert action.failure.error_type == "InvalidInstanceIdError"
