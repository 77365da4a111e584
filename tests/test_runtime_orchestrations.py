"""End to end through df.Runtime on a real SQLite file, with and without the executor cache."""

import asyncio
import sqlite3
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import durafn as df
from durafn.replay.history import EventRaised
from durafn.store.base import NewActivity, NewMessage, NewSubOrchestration, StepCommit, Work

CACHE_SIZES = [0, 5000]


def build_app() -> df.App:
    app = df.App()
    calls: list[str] = []

    @app.orchestrator
    def chain(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        a = yield context.call_activity("hello", "Tokyo")
        b = yield context.call_activity(hello, "London")
        c = yield context.call_activity(hello, context.get_input())
        return [a, b, c]

    @app.activity
    def hello(name: str) -> str:
        calls.append(name)
        return f"Hello {name}!"

    @app.orchestrator
    def fan(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        tasks = [context.call_activity(double, n) for n in range(context.get_input())]
        results = yield context.task_all(tasks)
        context.set_custom_status({"done": len(results)})
        return sum(results)

    @app.activity
    async def double(n: int) -> int:
        await asyncio.sleep(0)
        return n * 2

    @app.orchestrator
    def parent(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        first = yield context.call_sub_orchestrator(chain, "Paris")
        second = yield context.call_sub_orchestrator(
            "fan", 4, instance_id=f"{context.instance_id}-fan"
        )
        return {"first": first, "second": second, "parent_seen": context.instance_id}

    @app.orchestrator
    def race(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        slow = context.call_activity(sleepy, 1.0)
        fast = context.call_activity(sleepy, 0.0)
        winner = yield context.task_any([slow, fast])
        return winner.result

    @app.activity
    async def sleepy(seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    @app.orchestrator
    def catches(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        try:
            yield context.call_activity(explode, "kaboom")
        except df.TaskFailedError as err:
            return {
                "type": err.error_type,
                "message": err.message,
                "has_tb": "explode" in err.traceback,
            }
        return "not reached"

    @app.orchestrator
    def fails(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        yield context.call_activity(explode, "unhandled")

    @app.activity
    def explode(message: str) -> None:
        raise KeyError(message)

    @app.orchestrator
    def unknown_activity(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        yield context.call_activity("does_not_exist")

    @app.orchestrator
    def deterministic(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        before = (context.new_uuid(), context.current_utc_datetime.isoformat())
        yield context.call_activity(hello, "x")
        after = (context.new_uuid(), context.current_utc_datetime.isoformat())
        return [before, after]

    @app.orchestrator
    def waits(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        value = yield context.wait_for_external_event("go")
        return value

    app.calls = calls  # type: ignore[attr-defined]
    return app


def run(
    tmp_path: Path, cache_size: int, scenario: Callable[[df.Runtime], Coroutine[Any, Any, Any]]
) -> Any:
    app = build_app()

    async def main() -> Any:
        config = df.RuntimeConfig(cache_size=cache_size)
        async with df.Runtime(app, f"sqlite:///{tmp_path / 'durafn.db'}", config=config) as rt:
            return await scenario(rt)

    return asyncio.run(main())


@pytest.mark.parametrize("cache_size", CACHE_SIZES)
def test_chain_completes_with_history(tmp_path: Path, cache_size: int) -> None:
    async def scenario(rt: df.Runtime) -> None:
        instance_id = await rt.client.start_new("chain", None, "Berlin")
        status = await rt.client.wait_for_completion(instance_id, 10)
        assert status.runtime_status is df.OrchestrationRuntimeStatus.Completed
        assert status.output == ["Hello Tokyo!", "Hello London!", "Hello Berlin!"]
        full = await rt.client.get_status(instance_id, show_history=True, show_history_output=True)
        assert full is not None and full.history is not None
        kinds = [e["EventType"] for e in full.history]
        assert kinds[0] == "ExecutionStarted" and kinds[-1] == "ExecutionCompleted"
        assert kinds.count("TaskScheduled") == 3 and kinds.count("TaskCompleted") == 3
        completed = [e for e in full.history if e["EventType"] == "TaskCompleted"]
        assert [e["Result"] for e in completed] == status.output
        assert all(e["Name"] == "hello" and "ScheduledTime" in e for e in completed)
        assert full.to_json()["input"] == "Berlin"

    run(tmp_path, cache_size, scenario)


@pytest.mark.parametrize(("cache_size", "inbox_messages"), [(0, 3), (5000, 0)])
def test_activity_results_go_straight_to_a_live_executor(
    tmp_path: Path, cache_size: int, inbox_messages: int
) -> None:
    """With the executor live, each result and the step it drives are one commit, and a start
    made in the workers' process is committed with its first step: nothing passes through the
    inbox. Without a live executor, every result does.
    """

    async def scenario(rt: df.Runtime) -> None:
        status = await rt.client.wait_for_completion(await rt.client.start_new("chain"), 10)
        assert status.output == ["Hello Tokyo!", "Hello London!", "Hello None!"]

    run(tmp_path, cache_size, scenario)
    with sqlite3.connect(tmp_path / "durafn.db") as db:
        [(written,)] = db.execute(
            "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'inbox'"
        )
        [(left,)] = db.execute("SELECT count(*) FROM inbox")
    assert (written, left) == (inbox_messages, 0)


def test_a_sequence_of_activities_runs_in_one_task(tmp_path: Path) -> None:
    """The step on an activity's result leases the next activity to its host, and the task that
    ran the first runs the next one too: a chain costs no new task per activity. A step that
    leases several keeps one and starts the others in tasks of their own.
    """
    app = df.App()
    tasks: list[object] = []

    @app.activity
    async def noted(n: int) -> int:
        tasks.append(asyncio.current_task())
        return n + 1

    @app.orchestrator
    def sequence(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        value = 0
        for _ in range(10):
            value = yield context.call_activity(noted, value)
        values = yield context.task_all([context.call_activity(noted, n) for n in range(3)])
        return [value, values]

    async def main() -> Any:
        async with df.Runtime(app, f"sqlite:///{tmp_path / 'durafn.db'}") as rt:
            status = await rt.client.wait_for_completion(await rt.client.start_new("sequence"), 10)
            return status.output

    assert asyncio.run(main()) == [10, [1, 2, 3]]
    assert len(set(tasks[:11])) == 1
    assert len(set(tasks)) == 3


def test_an_activity_may_start_an_orchestration_and_wait_for_it(tmp_path: Path) -> None:
    """Work an activity's own code starts runs beside it, not after it: only the step on the
    activity's result hands its task the next activity.
    """
    app = df.App()
    runtimes: list[df.Runtime] = []

    @app.activity
    async def plus_one(n: int) -> int:
        return n + 1

    @app.orchestrator
    def inner(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        value = yield context.call_activity(plus_one, 1)
        return value

    @app.activity
    async def run_inner(_: None) -> Any:
        client = runtimes[0].client
        status = await client.wait_for_completion(await client.start_new("inner"), 5)
        return status.output

    @app.orchestrator
    def outer(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        value = yield context.call_activity(run_inner, None)
        return value

    async def main() -> Any:
        async with df.Runtime(app, f"sqlite:///{tmp_path / 'durafn.db'}") as rt:
            runtimes.append(rt)
            status = await rt.client.wait_for_completion(await rt.client.start_new("outer"), 10)
            return status.runtime_status, status.output

    assert asyncio.run(main()) == (df.OrchestrationRuntimeStatus.Completed, 2)


@pytest.mark.parametrize("cache_size", CACHE_SIZES)
def test_fan_out_fan_in_of_forty(tmp_path: Path, cache_size: int) -> None:
    async def scenario(rt: df.Runtime) -> None:
        instance_id = await rt.client.start_new("fan", client_input=40)
        status = await rt.client.wait_for_completion(instance_id, 20)
        assert status.output == sum(n * 2 for n in range(40))
        assert status.custom_status == {"done": 40}

    run(tmp_path, cache_size, scenario)


def test_a_burst_of_starts_is_acknowledged_as_plain_creates(tmp_path: Path) -> None:
    """One start at a time is committed with its first step; while one is under way, the others
    are plain creates that the dispatcher claims in batches. Either way every instance runs."""

    async def scenario(rt: df.Runtime) -> list[Any]:
        ids = await asyncio.gather(
            *(rt.client.start_new("chain", None, f"c{n}") for n in range(30))
        )
        return [(await rt.client.wait_for_completion(i, 20)).output[2] for i in ids]

    assert run(tmp_path, 5000, scenario) == [f"Hello c{n}!" for n in range(30)]
    with sqlite3.connect(tmp_path / "durafn.db") as db:
        starts = db.execute("SELECT count(*) FROM history WHERE event_type = 'ExecutionStarted'")
        [(started,)] = starts
        [(via_inbox,)] = db.execute(
            "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'inbox'"
        )
    assert started == 30
    assert via_inbox >= 29  # the first start took its step at once; the rest queued


def test_fan_outs_wider_than_the_activity_slots_never_exceed_them(tmp_path: Path) -> None:
    """A step leases to its host only as many activities as it has free slots (held until the
    commit, so concurrent steps do not take the same slots); the rest are claimed as slots free
    up.
    """
    app = df.App()
    running = [0, 0]  # now, peak

    @app.activity
    async def tracked(n: int) -> int:
        running[0] += 1
        running[1] = max(running)
        await asyncio.sleep(0.005)
        running[0] -= 1
        return n

    @app.orchestrator
    def wide(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        results = yield context.task_all([context.call_activity(tracked, n) for n in range(20)])
        return sum(results)

    async def main() -> list[Any]:
        config = df.RuntimeConfig(max_concurrent_activities=3)
        async with df.Runtime(app, f"sqlite:///{tmp_path / 'durafn.db'}", config=config) as rt:
            ids = [await rt.client.start_new("wide") for _ in range(3)]
            return [(await rt.client.wait_for_completion(i, 20)).output for i in ids]

    assert asyncio.run(main()) == [sum(range(20))] * 3
    assert running == [0, 3]


def test_only_work_for_activities_wakes_the_activity_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An activity claim is a write transaction: starts and results, which add work for the
    dispatcher only, do not send the activity worker looking for work (each step leases the
    activities it schedules itself)."""
    app = build_app()
    claims: list[int] = []

    async def main() -> list[Any]:
        # no live executors: every result goes through the inbox; no polling during the test
        config = df.RuntimeConfig(cache_size=0, poll_interval=30)
        async with df.Runtime(app, f"sqlite:///{tmp_path / 'durafn.db'}", config=config) as rt:
            store = rt.client._store.store
            claim = store.claim_activities

            def counted(*args: Any) -> Any:
                claimed = claim(*args)
                claims.append(len(claimed))
                return claimed

            monkeypatch.setattr(store, "claim_activities", counted)
            ids = await asyncio.gather(
                *(rt.client.start_new("chain", None, f"c{n}") for n in range(5))
            )
            return [(await rt.client.wait_for_completion(i, 20)).output[2] for i in ids]

    assert asyncio.run(main()) == [f"Hello c{n}!" for n in range(5)]
    assert claims in ([], [0])  # at most the worker's first look, made as the runtime starts


def test_a_step_wakes_the_workers_its_work_is_for() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def step(**fields: Any) -> StepCommit:
        return StepCommit("i", "e", "w", [], [], df.OrchestrationRuntimeStatus.Running, **fields)

    two = [NewActivity(0, "a", None), NewActivity(1, "a", None)]
    later = NewMessage("i", EventRaised(timestamp=now, name="x"), now + timedelta(seconds=1))
    due = NewMessage("other", EventRaised(timestamp=now, name="x"), now)
    child = NewSubOrchestration("c", "orch", None, "e2", 0)
    assert step().work(now) == Work.NONE
    assert step(activities=two, lease_activities=2).work(now) == Work.NONE
    assert step(activities=two, lease_activities=1).work(now) == Work.ACTIVITIES
    assert step(messages=[later]).work(now) == Work.TIMERS
    assert step(messages=[due, later]).work(now) == Work.ORCHESTRATIONS | Work.TIMERS
    assert step(sub_orchestrations=[child]).work(now) == Work.ORCHESTRATIONS


@pytest.mark.parametrize("cache_size", CACHE_SIZES)
def test_sub_orchestrations(tmp_path: Path, cache_size: int) -> None:
    async def scenario(rt: df.Runtime) -> None:
        instance_id = await rt.client.start_new("parent", "p1")
        status = await rt.client.wait_for_completion(instance_id, 10)
        assert status.runtime_status is df.OrchestrationRuntimeStatus.Completed, status.output
        assert status.output == {
            "first": ["Hello Tokyo!", "Hello London!", "Hello Paris!"],
            "second": 12,
            "parent_seen": "p1",
        }
        child = await rt.client.get_status("p1-fan")
        assert child is not None and child.output == 12

    run(tmp_path, cache_size, scenario)


def test_task_any_returns_the_first_to_finish(tmp_path: Path) -> None:
    async def scenario(rt: df.Runtime) -> None:
        status = await rt.client.wait_for_completion(await rt.client.start_new("race"), 10)
        assert status.output == 0.0

    run(tmp_path, 5000, scenario)


@pytest.mark.parametrize("cache_size", CACHE_SIZES)
def test_failures(tmp_path: Path, cache_size: int) -> None:
    async def scenario(rt: df.Runtime) -> None:
        caught = await rt.client.wait_for_completion(await rt.client.start_new("catches"), 10)
        assert caught.output == {"type": "KeyError", "message": "'kaboom'", "has_tb": True}

        failed = await rt.client.wait_for_completion(await rt.client.start_new("fails"), 10)
        assert failed.runtime_status is df.OrchestrationRuntimeStatus.Failed
        assert failed.output["error"] == "TaskFailedError"
        assert "explode" in failed.output["message"] and "KeyError" in failed.output["message"]
        assert failed.output["function"] == "fails"

        missing = await rt.client.wait_for_completion(
            await rt.client.start_new("unknown_activity"), 10
        )
        assert missing.runtime_status is df.OrchestrationRuntimeStatus.Failed
        assert "does_not_exist" in missing.output["message"]

    run(tmp_path, cache_size, scenario)


@pytest.mark.parametrize("cache_size", CACHE_SIZES)
def test_the_status_a_finish_hands_over_is_the_stored_one(tmp_path: Path, cache_size: int) -> None:
    """wait_for_completion takes the last step's result in memory; it must be what is stored."""

    async def scenario(rt: df.Runtime) -> None:
        for name, client_input in (("chain", "Oslo"), ("fails", None), ("fan", 5)):
            instance_id = await rt.client.start_new(name, None, client_input)
            handed = await rt.client.wait_for_completion(instance_id, 10)
            stored = await rt.client.get_status(instance_id)
            assert stored is not None and handed.to_json() == stored.to_json()
        instance_id = await rt.client.start_new("race")
        await rt.client.terminate(instance_id, "enough")
        handed = await rt.client.wait_for_completion(instance_id, 10)
        stored = await rt.client.get_status(instance_id)
        assert handed.runtime_status is df.OrchestrationRuntimeStatus.Terminated
        assert stored is not None and handed.to_json() == stored.to_json()

    run(tmp_path, cache_size, scenario)


@pytest.mark.parametrize("cache_size", CACHE_SIZES)
def test_a_wait_on_an_instance_live_here_takes_its_finish_as_committed(
    tmp_path: Path, cache_size: int
) -> None:
    """A wait on an instance whose executor lives here takes the finish handed over; one not
    held here (no cache, finished, unknown) is read from the store."""

    async def scenario(rt: df.Runtime) -> None:
        assert rt.dispatcher is not None
        instance_id = await rt.client.start_new("waits")
        pending = df.OrchestrationRuntimeStatus.Pending
        while (status := await rt.client.get_status(instance_id)) is None or (
            status.runtime_status is pending
        ):
            await asyncio.sleep(0.01)
        assert rt.dispatcher.holds(instance_id) is (cache_size > 0)
        with pytest.raises(df.OrchestrationTimeoutError):
            await rt.client.wait_for_completion(instance_id, 0.2)
        reads: list[str] = []
        read = rt.client.get_status

        async def counted_read(instance_id: str, *args: Any, **kwargs: Any) -> Any:
            reads.append(instance_id)
            return await read(instance_id, *args, **kwargs)

        rt.client.get_status = counted_read  # type: ignore[method-assign]
        waiting = asyncio.create_task(rt.client.wait_for_completion(instance_id, 10))
        await asyncio.sleep(0.05)
        await rt.client.raise_event(instance_id, "go", {"n": 1})
        handed = await waiting
        del rt.client.get_status
        if cache_size:  # held here: the finish is handed over with no read
            assert reads == []
        else:
            assert reads and set(reads) == {instance_id}
        stored = await rt.client.get_status(instance_id)
        assert handed.output == {"n": 1}
        assert stored is not None and handed.to_json() == stored.to_json()
        assert not rt.dispatcher.holds(instance_id)
        again = await rt.client.wait_for_completion(instance_id, 0.001)
        assert again.to_json() == stored.to_json()
        with pytest.raises(df.InstanceNotFoundError):
            await rt.client.wait_for_completion("never-started", 0.5)

    run(tmp_path, cache_size, scenario)


def test_start_new_errors(tmp_path: Path) -> None:
    async def scenario(rt: df.Runtime) -> None:
        with pytest.raises(df.FunctionNotFoundError, match="nope"):
            await rt.client.start_new("nope")
        for bad in ["", "a/b", "x" * 257, "tab\there", "q?", "#"]:
            with pytest.raises(df.InvalidInstanceIdError):
                await rt.client.start_new("chain", bad)
        with pytest.raises(df.SerializationError, match="input of orchestrator 'chain'"):
            await rt.client.start_new("chain", None, object())
        assert await rt.client.get_status_all() == []

    run(tmp_path, 5000, scenario)


def test_singleton_id_and_restart_after_completion(tmp_path: Path) -> None:
    async def scenario(rt: df.Runtime) -> None:
        await rt.client.start_new("race", "only-one")
        with pytest.raises(df.InstanceExistsError):
            await rt.client.start_new("race", "only-one")
        await rt.client.wait_for_completion("only-one", 10)
        await rt.client.start_new("chain", "only-one", "again")
        status = await rt.client.wait_for_completion("only-one", 10)
        assert status.name == "chain" and status.output[-1] == "Hello again!"
        history = await rt.client.get_status("only-one", show_history=True)
        assert history is not None and history.history is not None
        assert [e["EventType"] for e in history.history].count("ExecutionStarted") == 1

    run(tmp_path, 5000, scenario)


@pytest.mark.parametrize("cache_size", CACHE_SIZES)
def test_deterministic_values_are_stable(tmp_path: Path, cache_size: int) -> None:
    async def scenario(rt: df.Runtime) -> None:
        status = await rt.client.wait_for_completion(await rt.client.start_new("deterministic"), 10)
        (uuid1, t1), (uuid2, t2) = status.output
        assert uuid1 != uuid2 and t1 <= t2

    run(tmp_path, cache_size, scenario)


def test_work_survives_a_runtime_restart(tmp_path: Path) -> None:
    """A chain started by one runtime and stopped mid-way is finished by the next."""
    app = build_app()
    storage = f"sqlite:///{tmp_path / 'durafn.db'}"

    async def main() -> Any:
        client = df.DurableOrchestrationClient.from_storage(storage, app=app)
        async with client:
            instance_id = await client.start_new("chain", None, "later")
        async with df.Runtime(app, storage) as rt:
            return await rt.client.wait_for_completion(instance_id, 10)

    status = asyncio.run(main())
    assert status.output == ["Hello Tokyo!", "Hello London!", "Hello later!"]
    assert app.calls == ["Tokyo", "London", "later"]  # type: ignore[attr-defined]


def test_every_client_call_refuses_an_invalid_instance_id(tmp_path: Path) -> None:
    async def scenario(rt: df.Runtime) -> None:
        client = rt.client
        for bad in ["", "nul\x00here", "a/b", "x" * 300]:
            calls = [
                client.get_status(bad),
                client.raise_event(bad, "e", 1),
                client.terminate(bad, "r"),
                client.suspend(bad),
                client.resume(bad),
                client.rewind(bad),
                client.restart(bad),
                client.purge_instance_history(bad),
            ]
            for call in calls:
                with pytest.raises(df.InvalidInstanceIdError):
                    await call
        with pytest.raises(df.BadRequestError, match="instance id prefix"):
            await client.get_status_by(instance_id_prefix="nul\x00")

    run(tmp_path, 5000, scenario)


@dataclass
class Order:
    item: str
    quantity: int


def test_values_that_are_not_json_fail_at_the_call_site(tmp_path: Path) -> None:
    app = df.App()

    @app.activity
    def returns_a_set(x: int) -> set[int]:
        return {x}

    @app.activity
    def takes_an_order(order: Order) -> str:
        assert isinstance(order, Order)  # the annotation turns the JSON back into the dataclass
        return f"{order.quantity} x {order.item}"

    @app.orchestrator
    def bad_result(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        try:
            yield context.call_activity(returns_a_set, 1)
        except df.TaskFailedError as err:
            return [err.error_type, err.message]

    @app.orchestrator
    def bad_input(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        yield context.call_activity(takes_an_order, {1, 2})

    @app.orchestrator
    def good_input(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        value = yield context.call_activity(takes_an_order, Order("tea", 2))
        return value

    async def main() -> None:
        async with df.Runtime(app, f"sqlite:///{tmp_path / 'db.sqlite'}") as rt:
            caught = await rt.client.wait_for_completion(
                await rt.client.start_new("bad_result"), 10
            )
            assert caught.output[0] == "SerializationError"
            assert "result of activity 'returns_a_set'" in caught.output[1]

            failed = await rt.client.wait_for_completion(await rt.client.start_new("bad_input"), 10)
            assert failed.output["error"] == "SerializationError"
            assert "input of 'takes_an_order'" in failed.output["message"]
            history = await rt.client.get_status(failed.instance_id, show_history=True)
            assert history is not None and history.history is not None
            assert "TaskScheduled" not in [e["EventType"] for e in history.history]

            good = await rt.client.wait_for_completion(await rt.client.start_new("good_input"), 10)
            assert good.output == "2 x tea"

            waiting = await rt.client.start_new("good_input")
            with pytest.raises(df.SerializationError, match="data of event 'e'"):
                await rt.client.raise_event(waiting, "e", object())

    asyncio.run(main())
