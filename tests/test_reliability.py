"""Retries on durable timers and nondeterminism detection, end to end on a real SQLite file."""

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import durafn as df

ATTEMPTS: dict[str, int] = {}


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def retry_app() -> df.App:
    app = df.App()

    @app.activity
    def flaky(key: str) -> str:
        ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
        if not key.startswith("ok") or ATTEMPTS[key] < 3:
            raise ConnectionError(f"attempt {ATTEMPTS[key]} of {key} failed")
        return f"{key} took {ATTEMPTS[key]} attempts"

    @app.orchestrator
    def with_retry(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        key, interval, attempts = context.get_input()
        options = df.RetryOptions(
            first_retry_interval_in_milliseconds=interval,
            max_number_of_attempts=attempts,
            backoff_coefficient=2.0,
        )
        try:
            result = yield context.call_activity_with_retry(flaky, options, key)
        except df.TaskFailedError as err:
            return {"failed": err.message, "type": err.error_type}
        return result

    @app.orchestrator
    def child(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        value = yield context.call_activity(flaky, context.get_input())
        return value

    @app.orchestrator
    def parent(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        options = df.RetryOptions(first_retry_interval_in_milliseconds=50, max_number_of_attempts=4)
        value = yield context.call_sub_orchestrator_with_retry(child, options, context.get_input())
        return value

    return app


def history_of(status: df.DurableOrchestrationStatus) -> list[dict[str, Any]]:
    assert status.history is not None
    return status.history


def test_retry_backs_off_on_durable_timers(tmp_path: Path) -> None:
    async def main() -> None:
        async with df.Runtime(retry_app(), f"sqlite:///{tmp_path / 'db.sqlite'}") as rt:
            ok = await rt.client.start_new("with_retry", None, ["ok-1", 100, 5])
            done = await rt.client.wait_for_completion(ok, 10)
            assert done.output == "ok-1 took 3 attempts"
            full = await rt.client.get_status(ok, show_history=True)
            assert full is not None
            events = history_of(full)
            timers = [e for e in events if e["EventType"] == "TimerCreated"]
            failures = [e for e in events if e["EventType"] == "TaskFailed"]
            assert len(timers) == 2 and len(failures) == 2
            gaps = [
                (parse(t["FireAt"]) - parse(f["Timestamp"])).total_seconds()
                for t, f in zip(timers, failures, strict=True)
            ]
            # 100 ms, then 200 ms (backoff 2), measured from the step that saw the failure
            assert 0.1 <= gaps[0] < 0.2 and 0.2 <= gaps[1] < 0.3, gaps

            failing = await rt.client.start_new("with_retry", None, ["bad-1", 20, 3])
            failed = await rt.client.wait_for_completion(failing, 10)
            assert failed.output == {
                "failed": "attempt 3 of bad-1 failed",
                "type": "ConnectionError",
            }
            assert ATTEMPTS["bad-1"] == 3

            sub = await rt.client.start_new("parent", None, "ok-sub")
            assert (await rt.client.wait_for_completion(sub, 10)).output == "ok-sub took 3 attempts"

    asyncio.run(main())


def test_a_restart_during_back_off_neither_resets_nor_skips_it(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    app = retry_app()

    async def main() -> df.DurableOrchestrationStatus:
        async with df.Runtime(app, storage) as rt:
            instance_id = await rt.client.start_new("with_retry", None, ["ok-restart", 1000, 5])
            while True:  # stop as soon as the first attempt failed and the back-off began
                status = await rt.client.get_status(instance_id, show_history=True)
                assert status is not None
                if any(e["EventType"] == "TimerCreated" for e in history_of(status)):
                    break
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        async with df.Runtime(app, storage) as rt:
            await rt.client.wait_for_completion(instance_id, 20)
            final = await rt.client.get_status(instance_id, show_history=True)
            assert final is not None
            return final

    final = asyncio.run(main())
    assert final.output == "ok-restart took 3 attempts"
    events = history_of(final)
    first_failure = next(e for e in events if e["EventType"] == "TaskFailed")
    second_attempt = [e for e in events if e["EventType"] == "TaskScheduled"][1]
    waited = (
        parse(second_attempt["Timestamp"]) - parse(first_failure["Timestamp"])
    ).total_seconds()
    assert 1.0 <= waited < 1.25, waited  # the recorded fire time, not 1 s after the restart


def test_changed_code_under_a_waiting_instance_fails_with_nondeterminism(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"

    def app_version(activity: str) -> df.App:
        app = df.App()

        @app.activity
        def first(x: int) -> int:
            return x

        @app.activity
        def second(x: int) -> int:
            return x

        @app.orchestrator
        def evolving(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
            yield context.call_activity(activity, 1)
            value = yield context.wait_for_external_event("continue")
            return value

        return app

    async def main() -> df.DurableOrchestrationStatus:
        async with df.Runtime(app_version("first"), storage) as rt:
            instance_id = await rt.client.start_new("evolving")
            while True:
                status = await rt.client.get_status(instance_id, show_history=True)
                assert status is not None
                if any(e["EventType"] == "TaskCompleted" for e in history_of(status)):
                    break
                await asyncio.sleep(0.01)
        async with df.Runtime(app_version("second"), storage) as rt:
            await rt.client.raise_event(instance_id, "continue", 5)
            return await rt.client.wait_for_completion(instance_id, 10)

    status = asyncio.run(main())
    assert status.runtime_status is df.OrchestrationRuntimeStatus.Failed
    assert status.output["error"] == "NonDeterminismError"
    message = status.output["message"]
    assert "'first'" in message and "'second'" in message, message
