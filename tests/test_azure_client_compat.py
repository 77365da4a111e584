"""The real Azure Durable Functions Python client (``azure-functions-durable``), unmodified,
against a real ``durafn start`` through the ``/durabletask/`` routes (SPEC §5).

The SDK is given the binding JSON the Functions host would give it, with ``rpcBaseUrl`` naming
durafn's host; every call below goes over HTTP through the SDK's own aiohttp code.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import azure.functions as func
import httpx
import pytest
from azure.durable_functions import (  # type: ignore[import-untyped]
    DurableOrchestrationClient,
    OrchestrationRuntimeStatus,
)
from azure.durable_functions.models.utils import http_utils  # type: ignore[import-untyped]
from hostproc import HostProcess

from durafn.management import TASK_HUB, management_payload

FUNCTION_APP = """
import durafn as df

app = df.App(http_auth_level=df.AuthLevel.ANONYMOUS)


@app.orchestrator
def chain(context: df.DurableOrchestrationContext):
    context.set_custom_status({"stage": "greeting"})
    first = yield context.call_activity("say_hello", "Tokyo")
    second = yield context.call_activity("say_hello", "London")
    context.set_custom_status("done")
    return [first, second, context.get_input()]


@app.orchestrator
def approval(context: df.DurableOrchestrationContext):
    context.set_custom_status("waiting")
    answer = yield context.wait_for_external_event("approve")
    return {"approved": answer, "input": context.get_input()}


@app.orchestrator
def boom(context: df.DurableOrchestrationContext):
    yield context.call_activity("explode", None)


@app.activity
def say_hello(city: str) -> str:
    return f"Hello {city}!"


@app.activity
def explode(_: object) -> None:
    raise ValueError("kaboom")
"""

Status = Any  # the SDK's DurableOrchestrationStatus (the SDK ships no type information)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    folder = tmp_path_factory.mktemp("azure-sdk")
    (folder / "function_app.py").write_text(textwrap.dedent(FUNCTION_APP))
    process = HostProcess(folder, f"sqlite:///{folder / 'durafn.db'}")
    try:
        process.wait_ready()
        yield process
    finally:
        code = process.stop()
    assert code == 0, process.output()
    assert "Traceback" not in process.output(), process.output()


def binding(base_url: str) -> str:
    """The client binding JSON the Functions host hands the SDK, pointed at durafn.

    ``managementUrls`` holds the check-status payload with ``id`` as the placeholder the SDK
    replaces; ``rpcBaseUrl`` is where every client call goes.
    """
    orchestrators = f"{base_url}/runtime/webhooks/durabletask/orchestrators/{{functionName}}"
    return json.dumps(
        {
            "taskHubName": TASK_HUB,
            "creationUrls": {
                "createNewInstancePostUri": f"{orchestrators}[/{{instanceId}}]",
                "createAndWaitOnNewInstancePostUri": f"{orchestrators}[/{{instanceId}}]?timeout="
                "{timeoutInSeconds}&pollingInterval={intervalInSeconds}",
            },
            "managementUrls": management_payload(base_url, "INSTANCEID"),
            "rpcBaseUrl": f"{base_url}/durabletask/",
            "requiredQueryStringParameters": "",
        }
    )


def run(host: HostProcess, body: Callable[[DurableOrchestrationClient], Awaitable[None]]) -> None:
    """``body(client)`` in a fresh event loop, then close the SDK's aiohttp session.

    The SDK keeps one module-level session, bound to the loop that opened it (it expects the
    Functions worker's one long-lived loop) and never closed; reused from the next test's loop
    it fails with "Event loop is closed". Closing it through the SDK's own helper is the only
    way: the SDK has no public shutdown hook.
    """

    async def main() -> None:
        try:
            await body(DurableOrchestrationClient(binding(host.url)))
        finally:
            await http_utils._close_session()

    asyncio.run(main())


async def wait_for(
    client: DurableOrchestrationClient,
    instance_id: str,
    until: Callable[[Status], bool],
    timeout: float = 15.0,
    **options: bool,
) -> Status:
    """Poll ``get_status`` through the SDK until ``until(status)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        status = await client.get_status(instance_id, **options)
        if status and until(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"{instance_id} never got there: {status.to_json()}")
        await asyncio.sleep(0.05)


def finished(status: Status) -> bool:
    return status.runtime_status in (
        OrchestrationRuntimeStatus.Completed,
        OrchestrationRuntimeStatus.Failed,
        OrchestrationRuntimeStatus.Terminated,
    )


def test_start_and_status_with_history(host: HostProcess) -> None:
    async def body(client: DurableOrchestrationClient) -> None:
        fixed = await client.start_new("chain", "sdk-chain", {"n": 1, "tags": ["a"]})
        assert fixed == "sdk-chain"
        status = await wait_for(
            client, fixed, finished, show_history=True, show_history_output=True
        )
        assert status.name == "chain"
        assert status.instance_id == "sdk-chain"
        assert status.runtime_status is OrchestrationRuntimeStatus.Completed
        assert status.output == ["Hello Tokyo!", "Hello London!", {"n": 1, "tags": ["a"]}]
        assert status.input_ == {"n": 1, "tags": ["a"]}
        assert status.custom_status == "done"
        assert isinstance(status.created_time, datetime)
        assert status.last_updated_time >= status.created_time
        history = status.history
        assert [e["EventType"] for e in history] == [
            "ExecutionStarted",
            "TaskScheduled",
            "TaskCompleted",
            "TaskScheduled",
            "TaskCompleted",
            "ExecutionCompleted",
        ]
        assert history[0]["Input"] == {"n": 1, "tags": ["a"]}
        assert history[2]["Name"] == "say_hello" and history[2]["Result"] == "Hello Tokyo!"
        assert "ScheduledTime" in history[2] and history[2]["Timestamp"].endswith("Z")
        # Azure's field name for the same list, for code written against the real host
        assert status.historyEvents == history

        without_output = await client.get_status(fixed, show_history=True)
        assert "Result" not in without_output.history[2]
        assert without_output.history[2]["Name"] == "say_hello"
        plain = await client.get_status(fixed)
        assert plain.history is None
        assert plain.input_ == {"n": 1, "tags": ["a"]}  # showInput defaults to true, as Azure

        generated = await client.start_new("chain", client_input="just a string")
        assert len(generated) == 32
        done = await wait_for(client, generated, finished)
        assert done.output == ["Hello Tokyo!", "Hello London!", "just a string"]
        assert done.input_ == "just a string"

        no_input = await client.start_new("chain")
        assert (await wait_for(client, no_input, finished)).output[-1] is None

        missing = await client.get_status("no-such-instance")
        assert not missing  # the SDK's "no instance" status is falsy

    run(host, body)


def test_start_errors_surface_as_exceptions(host: HostProcess) -> None:
    async def body(client: DurableOrchestrationClient) -> None:
        with pytest.raises(Exception, match="no_such_orchestrator"):
            await client.start_new("no_such_orchestrator")
        with pytest.raises(Exception, match="256"):
            await client.start_new("chain", "x" * 300)
        await client.start_new("approval", "sdk-dup")
        with pytest.raises(Exception, match="sdk-dup"):
            await client.start_new("approval", "sdk-dup")
        await client.terminate("sdk-dup", "cleanup")

    run(host, body)


def test_raise_event_to_completion(host: HostProcess) -> None:
    async def body(client: DurableOrchestrationClient) -> None:
        instance_id = await client.start_new("approval", "sdk-approval", ["in", 2])
        waiting = await wait_for(client, instance_id, lambda s: s.custom_status == "waiting")
        assert waiting.runtime_status is OrchestrationRuntimeStatus.Running
        await client.raise_event(instance_id, "approve", {"by": "ana", "ok": True})
        status = await wait_for(client, instance_id, finished)
        assert status.runtime_status is OrchestrationRuntimeStatus.Completed
        assert status.output == {"approved": {"by": "ana", "ok": True}, "input": ["in", 2]}

        with pytest.raises(Exception, match="gone"):  # 410: the instance has finished
            await client.raise_event(instance_id, "approve", 1)
        with pytest.raises(Exception, match="No instance"):  # 404
            await client.raise_event("no-such-instance", "approve", 1)

        none_event = await client.start_new("approval", "sdk-approval-none")
        await wait_for(client, none_event, lambda s: s.custom_status == "waiting")
        await client.raise_event(none_event, "approve")  # event_data None
        assert (await wait_for(client, none_event, finished)).output == {
            "approved": None,
            "input": None,
        }

    run(host, body)


def test_terminate_suspend_resume(host: HostProcess) -> None:
    async def body(client: DurableOrchestrationClient) -> None:
        instance_id = await client.start_new("approval", "sdk-suspend")
        await wait_for(client, instance_id, lambda s: s.custom_status == "waiting")
        await client.suspend(instance_id, "a pause, with spaces & symbols")
        suspended = await wait_for(
            client, instance_id, lambda s: s.runtime_status is OrchestrationRuntimeStatus.Suspended
        )
        assert suspended.custom_status == "waiting"
        await client.raise_event(instance_id, "approve", "while suspended")
        await asyncio.sleep(0.3)
        still = await client.get_status(instance_id)
        assert still.runtime_status is OrchestrationRuntimeStatus.Suspended
        await client.resume(instance_id, "carry on")
        resumed = await wait_for(client, instance_id, finished)
        assert resumed.runtime_status is OrchestrationRuntimeStatus.Completed
        assert resumed.output == {"approved": "while suspended", "input": None}

        doomed = await client.start_new("approval", "sdk-terminate")
        await wait_for(client, doomed, lambda s: s.custom_status == "waiting")
        await client.terminate(doomed, "no longer needed")
        terminated = await wait_for(client, doomed, finished)
        assert terminated.runtime_status is OrchestrationRuntimeStatus.Terminated
        assert terminated.output == "no longer needed"

        # 410 on a finished instance: the SDK treats it as done, not as an error
        await client.terminate(doomed, "again")
        await client.suspend(doomed, "again")
        await client.resume(doomed, "again")
        for action in (client.terminate, client.suspend, client.resume):
            with pytest.raises(Exception, match="No instance"):
                await action("no-such-instance", "why")

    run(host, body)


def test_restart(host: HostProcess) -> None:
    async def body(client: DurableOrchestrationClient) -> None:
        original = await client.start_new("chain", "sdk-restart", "again")
        await wait_for(client, original, finished)
        fresh = await client.restart(original)
        assert isinstance(fresh, str) and fresh != original
        assert (await wait_for(client, fresh, finished)).output[-1] == "again"
        same = await client.restart(original, restart_with_new_instance_id=False)
        assert same == original
        assert (await wait_for(client, same, finished)).input_ == "again"
        with pytest.raises(Exception, match="No instance"):
            await client.restart("no-such-instance")

    run(host, body)


def test_queries(host: HostProcess) -> None:
    async def body(client: DurableOrchestrationClient) -> None:
        before = datetime.now(timezone.utc)  # the host shares this clock
        done = await client.start_new("chain", "sdk-query-done", "q")
        failed = await client.start_new("boom", "sdk-query-failed")
        running = await client.start_new("approval", "sdk-query-running", {"q": 1})
        await wait_for(client, done, finished)
        failure = await wait_for(client, failed, finished)
        assert failure.runtime_status is OrchestrationRuntimeStatus.Failed
        assert "kaboom" in failure.output["message"]
        await wait_for(client, running, lambda s: s.custom_status == "waiting")

        everything = await client.get_status_all()
        by_id = {s.instance_id: s for s in everything}
        assert {done, failed, running} <= set(by_id)
        assert by_id[running].runtime_status is OrchestrationRuntimeStatus.Running
        assert by_id[running].input_ == {"q": 1}  # the SDK cannot ask; Azure shows inputs
        assert by_id[done].output == ["Hello Tokyo!", "Hello London!", "q"]

        recent = await client.get_status_by(created_time_from=before)
        assert {s.instance_id for s in recent} == {done, failed, running}
        finished_only = await client.get_status_by(
            created_time_from=before,
            runtime_status=[
                OrchestrationRuntimeStatus.Completed,
                OrchestrationRuntimeStatus.Failed,
            ],
        )
        assert {s.instance_id for s in finished_only} == {done, failed}
        assert await client.get_status_by(created_time_to=before - timedelta(days=1)) == []
        # a status durafn never gives an instance matches nothing rather than failing
        assert (
            await client.get_status_by(runtime_status=[OrchestrationRuntimeStatus.Canceled]) == []
        )
        # Python's strftime writes year 1 as "1-01-01...": accepted, as the Azure host does
        assert {done, failed, running} <= {
            s.instance_id for s in await client.get_status_by(created_time_from=datetime.min)
        }
        by_prefix = await client.get_status_by(instance_id_prefix="sdk-query-")
        assert {s.instance_id for s in by_prefix} == {done, failed, running}

        await client.terminate(running, "done querying")
        await wait_for(client, running, finished)

    run(host, body)


def test_purge_one_and_by_filter(host: HostProcess) -> None:
    async def body(client: DurableOrchestrationClient) -> None:
        before = datetime.now(timezone.utc)  # the host shares this clock
        one = await client.start_new("chain", "sdk-purge-one")
        two = await client.start_new("chain", "sdk-purge-two")
        three = await client.start_new("boom", "sdk-purge-three")
        active = await client.start_new("approval", "sdk-purge-active")
        for instance_id in (one, two, three):
            await wait_for(client, instance_id, finished)

        purged = await client.purge_instance_history(one)
        assert purged.instances_deleted == 1
        assert not await client.get_status(one)
        assert (await client.purge_instance_history(one)).instances_deleted == 0  # 404

        completed_only = await client.purge_instance_history_by(
            created_time_from=before, runtime_status=[OrchestrationRuntimeStatus.Completed]
        )
        assert completed_only.instances_deleted == 1
        assert not await client.get_status(two)
        assert await client.get_status(three)

        rest = await client.purge_instance_history_by(
            created_time_from=datetime.min, created_time_to=datetime.now(timezone.utc)
        )
        assert rest.instances_deleted >= 1
        assert not await client.get_status(three)
        assert await client.get_status(active)  # active instances are never purged

        with pytest.raises(Exception, match="409"):  # purge of an active instance
            await client.purge_instance_history(active)
        await client.terminate(active, "cleanup")

    run(host, body)


def test_check_status_responses_point_at_durafn(host: HostProcess) -> None:
    async def body(client: DurableOrchestrationClient) -> None:
        request = func.HttpRequest(
            "POST", f"{host.url}/api/orchestrators/chain", headers={}, params={}, body=b""
        )
        instance_id = await client.start_new("chain", "sdk-check")
        response = client.create_check_status_response(request, instance_id)
        assert response.status_code == 202
        payload = json.loads(response.get_body())
        assert payload["id"] == "sdk-check"
        assert response.headers["Location"] == payload["statusQueryGetUri"]
        async with httpx.AsyncClient() as http:
            deadline = time.monotonic() + 15
            while (status := await http.get(payload["statusQueryGetUri"])).status_code == 202:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert status.status_code == 200
            assert status.json()["instanceId"] == "sdk-check"

        completed = await client.wait_for_completion_or_create_check_status_response(
            request, instance_id, timeout_in_milliseconds=5000, retry_interval_in_milliseconds=50
        )
        assert completed.status_code == 200
        assert json.loads(completed.get_body()) == ["Hello Tokyo!", "Hello London!", None]

        waiting = await client.start_new("approval", "sdk-check-waiting")
        pending = await client.wait_for_completion_or_create_check_status_response(
            request, waiting, timeout_in_milliseconds=200, retry_interval_in_milliseconds=50
        )
        assert pending.status_code == 202
        assert json.loads(pending.get_body())["id"] == "sdk-check-waiting"
        await client.terminate(waiting, "cleanup")

    run(host, body)
