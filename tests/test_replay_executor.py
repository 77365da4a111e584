"""OrchestrationExecutor: driving generators from hand-built histories (no I/O, no asyncio)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
from replay_sim import T0, Sim

from durafn.errors import SerializationError, TaskFailedError
from durafn.models import FailureDetails
from durafn.replay import (
    FUNCTION_NAME_ATTR,
    DurableOrchestrationContext,
    OrchestrationExecutor,
    Step,
    Task,
)
from durafn.replay.actions import (
    CompleteOrchestration,
    ContinueOrchestrationAsNew,
    FailOrchestration,
    ScheduleActivity,
    StartSubOrchestration,
)
from durafn.replay.history import (
    EventRaised,
    ExecutionStarted,
    OrchestratorStarted,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TimerFired,
)
from durafn.serialization import encode

Ctx = DurableOrchestrationContext
Gen = Generator[Task, Any, Any]


def completed(task_id: int, value: Any = None) -> TaskCompleted:
    return TaskCompleted(timestamp=T0, task_id=task_id, result=encode(value, "result"))


def failure(message: str = "boom", error_type: str = "ValueError") -> FailureDetails:
    return FailureDetails(error_type, message, "Traceback (remote)\n", "act")


def failed(task_id: int, message: str = "boom", error_type: str = "ValueError") -> TaskFailed:
    return TaskFailed(timestamp=T0, task_id=task_id, failure=failure(message, error_type))


def activity(task_id: int, name: str, value: Any = None) -> ScheduleActivity:
    return ScheduleActivity(task_id, name, encode(value, "input"))


def complete(value: Any) -> CompleteOrchestration:
    return CompleteOrchestration(encode(value, "output"))


def only_failure(step: Step) -> FailureDetails:
    assert step.done
    assert len(step.actions) == 1
    action = step.actions[0]
    assert isinstance(action, FailOrchestration)
    return action.failure


# -- chains, names and composites -------------------------------------------------------------


def say_hello(name: str) -> str:
    return f"Hello {name}!"


def hello_chain(context: Ctx) -> Gen:
    a = yield context.call_activity("say_hello", "Tokyo")
    b = yield context.call_activity("say_hello", "Seattle")
    c = yield context.call_activity("say_hello", "London")
    return [a, b, c]


def test_three_activity_chain_live_and_rebuilt_agree_at_every_step() -> None:
    sim = Sim(hello_chain)
    assert sim.start().actions == [activity(0, "say_hello", "Tokyo")]
    assert sim.step(completed(0, "Hello Tokyo!")).actions == [activity(1, "say_hello", "Seattle")]
    assert sim.step(completed(1, "Hello Seattle!")).actions == [activity(2, "say_hello", "London")]
    last = sim.step(completed(2, "Hello London!"))
    assert last == Step([complete(["Hello Tokyo!", "Hello Seattle!", "Hello London!"])], None, True)
    assert sim.live.done
    assert sim.live.history_length == 8  # what it was given; the runtime records its actions

    # Rebuilt from the whole history, the completion is already recorded: nothing to return.
    replayed = sim.replay_all()
    assert replayed.done
    assert replayed.apply([]) == Step([], None, True)
    assert sim.live.apply([OrchestratorStarted(timestamp=sim.now), completed(7)]).actions == []


def test_function_objects_are_named_by_registered_attr_or_dunder_name() -> None:
    def impl(x: int) -> int:
        return x

    setattr(impl, FUNCTION_NAME_ATTR, "registered_name")

    def orch(context: Ctx) -> Gen:
        yield context.call_activity(impl, 1)
        yield context.call_activity(say_hello, input="x")
        return None

    sim = Sim(orch)
    assert sim.start().actions == [activity(0, "registered_name", 1)]
    assert sim.step(completed(0)).actions == [activity(1, "say_hello", "x")]


def test_context_name_passes_the_context_as_that_keyword() -> None:
    def orch(*, ctx: Ctx) -> Gen:
        value = yield ctx.call_activity("f", input_=5)
        return value

    sim = Sim(orch, context_name="ctx")
    assert sim.start().actions == [activity(0, "f", 5)]
    assert sim.step(completed(0, 6)).actions == [complete(6)]


def test_task_all_gives_results_in_the_order_given() -> None:
    def orch(context: Ctx) -> Gen:
        tasks = [context.call_activity("work", i) for i in range(3)]
        results = yield context.task_all(tasks)
        return results

    sim = Sim(orch)
    assert sim.start().actions == [activity(i, "work", i) for i in range(3)]
    assert sim.step(completed(2, "c")).actions == []
    assert sim.step(completed(0, "a")).actions == []
    assert sim.step(completed(1, "b")).actions == [complete(["a", "b", "c"])]


def test_task_all_fails_fast_with_the_first_failure_in_history_order() -> None:
    def orch(context: Ctx) -> Gen:
        tasks = [context.call_activity("work", i) for i in range(4)]
        try:
            yield context.task_all(tasks)
        except TaskFailedError as error:
            return error.message
        return "no failure"

    sim = Sim(orch)
    sim.start()
    assert sim.step(completed(0)).actions == []
    # Two failures in one step: the one earlier in history wins; task 3 is still running.
    step = sim.step(failed(2, "second is first"), failed(1, "first is second"))
    assert step.actions == [complete("second is first")]


def test_task_all_of_nothing_and_of_finished_tasks_completes_at_once() -> None:
    def orch(context: Ctx) -> Gen:
        empty = yield context.task_all([])
        first = context.call_activity("work")
        yield first
        again = yield context.task_all([first, first])
        return [empty, again]

    sim = Sim(orch)
    sim.start()
    assert sim.step(completed(0, 1)).actions == [complete([[], [1, 1]])]


def test_task_any_returns_the_first_task_to_finish() -> None:
    def orch(context: Ctx) -> Gen:
        slow = context.call_activity("slow")
        fast = context.call_activity("fast")
        winner = yield context.task_any([slow, fast])
        assert winner is fast
        rest = yield slow
        return [winner.result, rest]

    sim = Sim(orch)
    sim.start()
    assert sim.step(completed(1, "f")).actions == []
    assert sim.step(completed(0, "s")).actions == [complete(["f", "s"])]


def test_task_any_winner_may_be_a_failed_task() -> None:
    def orch(context: Ctx) -> Gen:
        a, b = context.call_activity("a"), context.call_activity("b")
        winner = yield context.task_any([a, b])
        return [winner is b, winner.is_faulted, str(winner.exception)]

    sim = Sim(orch)
    sim.start()
    assert sim.step(failed(1)).actions == [
        complete([True, True, "'b' failed with ValueError: boom"])
    ]


def test_task_any_of_nothing_is_a_clear_error() -> None:
    def orch(context: Ctx) -> Gen:
        yield context.task_any([])

    assert "at least one task" in only_failure(Sim(orch).start()).message


def test_task_all_rejects_non_tasks() -> None:
    def orch(context: Ctx) -> Gen:
        yield context.task_all([1, 2])  # type: ignore[list-item]

    details = only_failure(Sim(orch).start())
    assert details.error_type == "TypeError"
    assert "task_all()" in details.message


def test_tasks_created_but_not_yielded_are_still_scheduled() -> None:
    def orch(context: Ctx) -> Gen:
        context.call_activity("fire_and_forget")
        value = yield context.call_activity("awaited")
        context.call_sub_orchestrator("child")
        return value

    sim = Sim(orch)
    assert sim.start().actions == [activity(0, "fire_and_forget"), activity(1, "awaited")]
    step = sim.step(completed(1, 3))
    assert step.actions == [StartSubOrchestration(2, "child", "inst:2", None), complete(3)]


# -- failures ---------------------------------------------------------------------------------


def test_activity_failure_can_be_caught_in_the_orchestrator() -> None:
    def orch(context: Ctx) -> Gen:
        try:
            yield context.call_activity("say_hello", "Tokyo")
        except TaskFailedError as error:
            return {
                "function": error.function,
                "error_type": error.error_type,
                "message": error.message,
                "traceback": error.traceback,
                "str": str(error),
            }
        return None

    sim = Sim(orch)
    sim.start()
    assert sim.step(failed(0, "no such city")).actions == [
        complete(
            {
                "function": "say_hello",
                "error_type": "ValueError",
                "message": "no such city",
                "traceback": "Traceback (remote)\n",
                "str": "'say_hello' failed with ValueError: no such city",
            }
        )
    ]


def test_unhandled_activity_failure_fails_the_orchestration() -> None:
    sim = Sim(hello_chain, name="hello_sequence")
    sim.start()
    details = only_failure(sim.step(failed(0, "bad city", "KeyError")))
    assert details.error_type == "TaskFailedError"
    assert details.message == "'say_hello' failed with KeyError: bad city"
    assert details.function == "hello_sequence"
    assert details.traceback.startswith("Traceback")
    assert "hello_chain" in details.traceback
    assert details.traceback.endswith("'say_hello' failed remotely:\nTraceback (remote)\n")
    assert sim.live.apply([completed(1)]).actions == []


def test_an_exception_raised_by_the_orchestrator_fails_it_and_drops_unsent_work() -> None:
    def orch(context: Ctx) -> Gen:
        yield context.call_activity("a")
        context.call_activity("never_sent")
        raise RuntimeError("orchestrator broke")

    sim = Sim(orch)
    sim.start()
    details = only_failure(sim.step(completed(0)))
    assert (details.error_type, details.message) == ("RuntimeError", "orchestrator broke")
    assert details.function == "orch"


def test_unserializable_output_fails_with_serialization_error() -> None:
    def orch(context: Ctx) -> Gen:
        yield context.call_activity("a")
        return object()

    sim = Sim(orch)
    sim.start()
    details = only_failure(sim.step(completed(0)))
    assert details.error_type == "SerializationError"
    assert "output of orchestrator 'orch'" in details.message


def test_unserializable_input_raises_at_the_call_site() -> None:
    def orch(context: Ctx) -> Gen:
        try:
            context.call_activity("a", {1, 2})
        except SerializationError as error:
            assert "input of 'a'" in str(error)
        yield context.call_activity("a", input={1: "int key"})

    details = only_failure(Sim(orch).start())
    assert details.error_type == "SerializationError"


@pytest.mark.parametrize(
    ("value", "shown"),
    [(42, "yielded int 42"), (None, "yielded NoneType None"), ("x", "yielded str 'x'")],
)
def test_yielding_a_non_task_fails_with_a_clear_type_error(value: Any, shown: str) -> None:
    def orch(context: Ctx) -> Generator[Any, Any, Any]:
        yield value

    details = only_failure(Sim(orch).start())
    assert details.error_type == "TypeError"
    assert shown in details.message
    assert "yield a task from the context (call_activity" in details.message


def test_yielding_a_coroutine_mentions_async_def() -> None:
    async def fetch() -> int:
        return 1

    def orch(context: Ctx) -> Generator[Any, Any, Any]:
        yield fetch()

    details = only_failure(Sim(orch).start())
    assert "coroutine" in details.message
    assert "async def" in details.message


def test_an_async_def_orchestrator_fails_cleanly() -> None:
    async def orch(context: Ctx) -> int:
        return 1

    details = only_failure(Sim(orch).start())
    assert details.error_type == "TypeError"
    assert "async def" in details.message


def test_a_plain_function_orchestrator_completes_with_its_return_value() -> None:
    def orch(context: Ctx) -> int:
        return 7

    assert Sim(orch).start() == Step([complete(7)], None, True)


def test_corrupt_history_fails_instead_of_raising() -> None:
    executor = OrchestrationExecutor(hello_chain, instance_id="inst")
    executor.apply([OrchestratorStarted(timestamp=T0), ExecutionStarted(timestamp=T0, name="o")])
    bad = TaskCompleted(timestamp=T0, task_id=0, result="{not json")
    details = only_failure(executor.apply([bad]))
    assert details.error_type == "JSONDecodeError"


def test_unknown_task_ids_are_ignored() -> None:
    sim = Sim(hello_chain)
    sim.start()
    stale = TimerFired(timestamp=T0, task_id=99, fire_at=T0)
    assert sim.step(completed(42, "stale"), stale).actions == []
    assert sim.step(completed(0, "a")).actions == [activity(1, "say_hello", "Seattle")]


def test_failure_details_survive_an_exception_whose_str_raises() -> None:
    class Weird(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    def orch(context: Ctx) -> Gen:
        yield context.call_activity("a")
        raise Weird

    sim = Sim(orch)
    sim.start()
    details = only_failure(sim.step(completed(0)))
    assert details.error_type == "Weird"
    assert details.message == "<unprintable: RuntimeError>"


# -- sub-orchestrations and continue-as-new ---------------------------------------------------


def test_sub_orchestrations_default_ids_completion_and_failure() -> None:
    def orch(context: Ctx) -> Gen:
        first = yield context.call_sub_orchestrator("child", 1)
        try:
            yield context.call_sub_orchestrator("child", input=2, instance_id="fixed")
        except TaskFailedError as error:
            return [first, error.function, error.message]
        return None

    sim = Sim(orch)
    assert sim.start().actions == [StartSubOrchestration(0, "child", "inst:0", "1")]
    done = SubOrchestrationInstanceCompleted(timestamp=T0, task_id=0, result='"one"')
    assert sim.step(done).actions == [StartSubOrchestration(1, "child", "fixed", "2")]
    fail = SubOrchestrationInstanceFailed(timestamp=T0, task_id=1, failure=failure("child broke"))
    assert sim.step(fail).actions == [complete(["one", "child", "child broke"])]


def test_parent_instance_id_comes_from_execution_started() -> None:
    def orch(context: Ctx) -> Gen:
        yield context.call_activity("a")
        return context.parent_instance_id

    sim = Sim(orch, instance_id="parent:3")
    sim.start(parent_instance_id="parent", parent_task_id=3)
    assert sim.step(completed(0)).actions == [complete("parent")]


def test_continue_as_new_carries_unconsumed_events_over_in_arrival_order() -> None:
    def orch(context: Ctx) -> Gen:
        count = context.get_input()
        first = yield context.wait_for_external_event("tick")
        assert not context.will_continue_as_new
        context.continue_as_new(count + first)
        assert context.will_continue_as_new
        return "ignored"

    def raised(name: str, value: Any) -> EventRaised:
        return EventRaised(timestamp=T0, name=name, input=encode(value, "event"))

    sim = Sim(orch)
    assert sim.start(10).actions == []
    step = sim.step(
        raised("other", "x"), raised("tick", 1), raised("tick", 2), raised("other", "y")
    )
    assert step == Step(
        [
            ContinueOrchestrationAsNew(
                "11", (raised("other", "x"), raised("tick", 2), raised("other", "y"))
            )
        ],
        None,
        True,
    )
