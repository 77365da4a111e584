"""Events, timers, terminate/suspend/resume, purge and queries, through the real host over HTTP."""

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import durafn as df
from durafn.host.asgi import build_asgi_app
from durafn.host.config import HostConfig

BASE = "/runtime/webhooks/durabletask"


def build_app() -> df.App:
    app = df.App()

    @app.orchestrator
    def collect(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        """Waits for three 'item' events, then a 'done' one."""
        items = []
        for _ in range(3):
            items.append((yield context.wait_for_external_event("item")))
        done = yield context.wait_for_external_event("done")
        return {"items": items, "done": done}

    @app.orchestrator
    def parallel_waits(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        waits = [context.wait_for_external_event("Ping") for _ in range(3)]
        results = yield context.task_all(waits)
        return results

    @app.orchestrator
    def sleeper(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        seconds = context.get_input()
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=seconds))
        value = yield context.call_activity(echo, "after sleep")
        return value

    @app.orchestrator
    def cancelled_timer(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        timer = context.create_timer(context.current_utc_datetime + timedelta(hours=1))
        event = context.wait_for_external_event("go")
        winner = yield context.task_any([timer, event])
        timer.cancel()
        return "event" if winner == event else "timer"

    @app.orchestrator
    def counter(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        """Eternal: adds each 'add' event to its input, continuing as new; 'stop' ends it."""
        total = context.get_input() or 0
        event = yield context.wait_for_external_event("add")
        if event == "stop":
            return total
        context.continue_as_new(total + event)

    @app.activity
    def echo(value: Any) -> Any:
        return value

    return app


@pytest.fixture
def http(tmp_path: Path) -> Iterator[TestClient]:
    config = HostConfig(storage=f"sqlite:///{tmp_path / 'durafn.db'}")
    with TestClient(build_asgi_app(build_app(), config)) as client:
        yield client


def status(http: TestClient, instance_id: str) -> dict[str, Any]:
    body: dict[str, Any] = http.get(f"{BASE}/instances/{instance_id}?showHistory=true").json()
    return body


def wait_status(
    http: TestClient, instance_id: str, wanted: str, timeout: float = 10
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = status(http, instance_id)
        if body.get("runtimeStatus") == wanted:
            return body
        time.sleep(0.02)
    raise AssertionError(f"{instance_id} never became {wanted}: {status(http, instance_id)}")


def start(http: TestClient, name: str, instance_id: str, data: Any = None) -> None:
    response = http.post(f"{BASE}/orchestrators/{name}/{instance_id}", json=data)
    assert response.status_code == 202, response.text


def raise_event(http: TestClient, instance_id: str, name: str, data: Any) -> int:
    return http.post(f"{BASE}/instances/{instance_id}/raiseEvent/{name}", json=data).status_code


def test_events_raised_before_the_waits_are_kept_in_order(http: TestClient) -> None:
    start(http, "collect", "c1")
    # all raised at once, before the orchestrator could wait for any of them
    for value in ["a", "b", "c"]:
        assert raise_event(http, "c1", "item", value) == 202
    assert raise_event(http, "c1", "done", {"ok": True}) == 202
    body = wait_status(http, "c1", "Completed")
    assert body["output"] == {"items": ["a", "b", "c"], "done": {"ok": True}}


def test_several_waits_on_one_name_get_events_in_arrival_order(http: TestClient) -> None:
    start(http, "parallel_waits", "p1")
    wait_status(http, "p1", "Running")
    for n in range(3):
        raise_event(http, "p1", "ping", n)  # names match case-insensitively
    assert wait_status(http, "p1", "Completed")["output"] == [0, 1, 2]


def test_raise_event_errors(http: TestClient) -> None:
    assert raise_event(http, "nobody", "x", 1) == 404
    start(http, "sleeper", "s0", 0)
    wait_status(http, "s0", "Completed")
    assert raise_event(http, "s0", "x", 1) == 410
    start(http, "collect", "bad-json")
    response = http.post(f"{BASE}/instances/bad-json/raiseEvent/item", content=b"{oops")
    assert response.status_code == 400
    assert raise_event(http, "bad-json", "done", 1) == 202  # the bad request stored nothing


def test_durable_timer_and_cancel(http: TestClient) -> None:
    began = time.monotonic()
    start(http, "sleeper", "t1", 0.5)
    body = wait_status(http, "t1", "Completed")
    assert time.monotonic() - began >= 0.5
    assert body["output"] == "after sleep"
    events = {e["EventType"]: e for e in body["historyEvents"]}
    assert events["TimerFired"]["FireAt"] == events["TimerCreated"]["FireAt"]

    start(http, "cancelled_timer", "t2")
    wait_status(http, "t2", "Running")
    raise_event(http, "t2", "go", None)
    assert wait_status(http, "t2", "Completed")["output"] == "event"


def test_continue_as_new_carries_events_over(http: TestClient) -> None:
    start(http, "counter", "k1", 0)
    # raised faster than the generations turn over: each must still arrive, in order
    for value in [*range(1, 21), "stop"]:
        assert raise_event(http, "k1", "add", value) == 202
    body = wait_status(http, "k1", "Completed")
    assert body["output"] == 210
    assert body["input"] == 210


def test_terminate(http: TestClient) -> None:
    start(http, "collect", "term")
    response = http.post(f"{BASE}/instances/term/terminate?reason=no%20longer%20needed")
    assert response.status_code == 202
    body = wait_status(http, "term", "Terminated")
    assert body["output"] == "no longer needed"
    assert body["historyEvents"][-1]["EventType"] == "ExecutionTerminated"
    assert http.post(f"{BASE}/instances/term/terminate").status_code == 410
    assert http.post(f"{BASE}/instances/missing/terminate").status_code == 404
    assert raise_event(http, "term", "item", 1) == 410


def test_suspend_and_resume(http: TestClient) -> None:
    start(http, "collect", "sus")
    wait_status(http, "sus", "Running")
    assert http.post(f"{BASE}/instances/sus/suspend?reason=hold").status_code == 202
    wait_status(http, "sus", "Suspended")
    for value in ["a", "b", "c"]:
        raise_event(http, "sus", "item", value)
    raise_event(http, "sus", "done", 1)
    time.sleep(0.3)
    assert status(http, "sus")["runtimeStatus"] == "Suspended"  # events wait in the inbox
    assert http.post(f"{BASE}/instances/sus/resume?reason=go").status_code == 202
    body = wait_status(http, "sus", "Completed")
    assert body["output"] == {"items": ["a", "b", "c"], "done": 1}
    kinds = [e["EventType"] for e in body["historyEvents"]]
    assert "ExecutionSuspended" in kinds and "ExecutionResumed" in kinds
    assert http.post(f"{BASE}/instances/sus/suspend").status_code == 410
    assert http.post(f"{BASE}/instances/sus/resume").status_code == 410
    assert http.post(f"{BASE}/instances/nope/suspend").status_code == 404


def test_terminate_a_suspended_instance(http: TestClient) -> None:
    start(http, "collect", "st")
    wait_status(http, "st", "Running")
    http.post(f"{BASE}/instances/st/suspend")
    wait_status(http, "st", "Suspended")
    http.post(f"{BASE}/instances/st/terminate?reason=bye")
    assert wait_status(http, "st", "Terminated")["output"] == "bye"


def test_restart(http: TestClient) -> None:
    start(http, "sleeper", "r1", 0)
    wait_status(http, "r1", "Completed")
    fresh = http.post(f"{BASE}/instances/r1/restart")
    assert fresh.status_code == 202
    new_id = fresh.json()["id"]
    assert new_id != "r1"
    assert wait_status(http, new_id, "Completed")["input"] == 0
    same = http.post(f"{BASE}/instances/r1/restart?restartWithNewInstanceId=false")
    assert same.status_code == 202 and same.json()["id"] == "r1"
    assert http.post(f"{BASE}/instances/unknown/restart").status_code == 404


def test_purge(http: TestClient) -> None:
    start(http, "collect", "active")
    assert http.delete(f"{BASE}/instances/active").status_code == 409
    assert http.delete(f"{BASE}/instances/none").status_code == 404
    for n in range(3):
        start(http, "sleeper", f"done-{n}", 0)
    for n in range(3):
        wait_status(http, f"done-{n}", "Completed")
    one = http.delete(f"{BASE}/instances/done-0")
    assert one.status_code == 200 and one.json() == {"instancesDeleted": 1}
    assert http.get(f"{BASE}/instances/done-0").status_code == 404
    many = http.delete(f"{BASE}/instances?runtimeStatus=Completed")
    assert many.json() == {"instancesDeleted": 2}
    assert [s["instanceId"] for s in http.get(f"{BASE}/instances").json()] == ["active"]


def test_query_filters_and_paging_while_instances_are_added(http: TestClient) -> None:
    for n in range(5):
        start(http, "collect", f"q-{n}", {"n": n})
    seen: list[str] = []
    token = None
    added = 0
    while True:
        headers: dict[str, str] = {"x-ms-continuation-token": token} if token else {}
        page = http.get(
            f"{BASE}/instances?top=2&instanceIdPrefix=q-&showInput=true", headers=headers
        )
        assert page.status_code == 200
        seen += [s["instanceId"] for s in page.json()]
        assert all(s["input"] is not None for s in page.json())
        if added < 3:
            start(http, "collect", f"q-new-{added}", {"new": added})
            added += 1
        token = page.headers.get("x-ms-continuation-token")
        if token is None:
            break
    assert len(seen) == len(set(seen)) == 8  # nothing twice, nothing skipped
    running = http.get(f"{BASE}/instances?runtimeStatus=Running,Pending&instanceIdPrefix=q-").json()
    assert len(running) == 8
    assert http.get(f"{BASE}/instances?runtimeStatus=Completed&instanceIdPrefix=q-").json() == []
    created = status(http, "q-0")["createdTime"]
    after = http.get(f"{BASE}/instances?createdTimeFrom={created}&instanceIdPrefix=q-").json()
    assert "q-0" in [s["instanceId"] for s in after]
    assert all(s["input"] is None for s in after)  # showInput defaults to false in lists
    bad = http.get(f"{BASE}/instances", headers={"x-ms-continuation-token": "garbage!"})
    assert bad.status_code == 400
