"""HTTP triggers and the management API through the real Starlette app (TestClient runs its
lifespan, so a real Runtime on a real SQLite file serves the requests)."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import durafn as df
from durafn.host.asgi import build_asgi_app
from durafn.host.config import HostConfig

BASE = "/runtime/webhooks/durabletask"


def build_app() -> df.App:
    app = df.App(http_auth_level=df.AuthLevel.ANONYMOUS)

    @app.route(route="orchestrators/{functionName}/{instanceId}", methods=["POST"])
    @app.durable_client_input(client_name="client")
    async def http_start_single(req: df.HttpRequest, client: df.DurableOrchestrationClient) -> Any:
        instance_id = req.route_params["instanceId"]
        existing = await client.get_status(instance_id)
        if existing is None or existing.runtime_status in (
            df.OrchestrationRuntimeStatus.Completed,
            df.OrchestrationRuntimeStatus.Failed,
            df.OrchestrationRuntimeStatus.Terminated,
        ):
            await client.start_new(req.route_params["functionName"], instance_id, req.get_json())
            return client.create_check_status_response(req, instance_id)
        return df.HttpResponse(
            f"An instance with ID '{instance_id}' already exists.", status_code=409
        )

    @app.route(route="echo/{name}/{count:int?}")
    def echo(req: df.HttpRequest) -> dict[str, Any]:
        return {
            "method": req.method,
            "route": req.route_params,
            "params": req.params,
            "json": req.get_json(),
        }

    @app.route(methods=["GET"])
    def text(req: df.HttpRequest) -> str:
        return "plain"

    @app.route(route="boom")
    def boom(req: df.HttpRequest) -> str:
        raise RuntimeError("secret internals")

    @app.orchestrator
    def hello_sequence(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        a = yield context.call_activity("say_hello", "Tokyo")
        b = yield context.call_activity(say_hello, "London")
        return [a, b, context.get_input()]

    @app.orchestrator
    def waiter(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        value = yield context.wait_for_external_event("go")
        return value

    @app.activity
    def say_hello(name: str) -> str:
        return f"Hello {name}!"

    return app


@pytest.fixture
def http(tmp_path: Path) -> Iterator[TestClient]:
    config = HostConfig(storage=f"sqlite:///{tmp_path / 'durafn.db'}")
    with TestClient(
        build_asgi_app(build_app(), config), base_url="http://127.0.0.1:7071"
    ) as client:
        yield client


def wait_done(http: TestClient, url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = http.get(url)
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
        assert response.status_code == 202, response.text
        time.sleep(0.02)
    raise AssertionError(f"{url} did not finish")


def test_seed_starter_runs_to_completion(http: TestClient) -> None:
    response = http.post("/api/orchestrators/hello_sequence/abc", json={"x": 1})
    assert response.status_code == 202, response.text
    payload = response.json()
    assert payload["id"] == "abc"
    assert response.headers["location"] == payload["statusQueryGetUri"]
    assert payload["statusQueryGetUri"].startswith(f"http://127.0.0.1:7071{BASE}/instances/abc?")
    for key in (
        "sendEventPostUri",
        "terminatePostUri",
        "rewindPostUri",
        "purgeHistoryDeleteUri",
        "restartPostUri",
        "suspendPostUri",
        "resumePostUri",
    ):
        assert payload[key].startswith("http://127.0.0.1:7071/"), key
    body = wait_done(http, payload["statusQueryGetUri"])
    assert body["runtimeStatus"] == "Completed"
    assert body["output"] == ["Hello Tokyo!", "Hello London!", {"x": 1}]
    assert body["input"] == {"x": 1}
    assert set(body) >= {"name", "instanceId", "createdTime", "lastUpdatedTime", "customStatus"}
    assert body["createdTime"].endswith("Z")


def test_urls_follow_the_request_host(http: TestClient) -> None:
    response = http.post(
        "/api/orchestrators/hello_sequence/h1", headers={"host": "example.test:8080"}
    )
    assert response.json()["statusQueryGetUri"].startswith("http://example.test:8080/")


def test_seed_starter_answers_409_while_running(http: TestClient) -> None:
    first = http.post("/api/orchestrators/waiter/dup")
    assert first.status_code == 202
    second = http.post("/api/orchestrators/waiter/dup")
    assert second.status_code == 409
    assert "already exists" in second.text
    assert http.post(f"{BASE}/instances/dup/raiseEvent/go", json="went").status_code == 202
    assert wait_done(http, f"{BASE}/instances/dup")["output"] == "went"
    third = http.post("/api/orchestrators/waiter/dup")
    assert third.status_code == 202


def test_starter_errors_become_status_codes(http: TestClient) -> None:
    unknown = http.post("/api/orchestrators/nope/x1")
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]
    bad_json = http.post("/api/orchestrators/hello_sequence/x2", content=b"{not json")
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["error"]
    assert http.get(f"{BASE}/instances/x2").status_code == 404


def test_management_start_with_and_without_id(http: TestClient) -> None:
    fixed = http.post(f"{BASE}/orchestrators/hello_sequence/fixed-1", json=[1, 2])
    assert fixed.status_code == 202 and fixed.json()["id"] == "fixed-1"
    generated = http.post(f"{BASE}/orchestrators/hello_sequence")
    assert generated.status_code == 202
    generated_id = generated.json()["id"]
    assert len(generated_id) == 32
    assert wait_done(http, fixed.json()["statusQueryGetUri"])["output"][-1] == [1, 2]
    assert wait_done(http, f"{BASE}/instances/{generated_id}")["output"][-1] is None
    again = http.post(f"{BASE}/orchestrators/hello_sequence/fixed-1")
    assert again.status_code == 202  # finished ids start afresh
    assert http.post(f"{BASE}/orchestrators/unknown_fn").status_code == 404
    assert http.post(f"{BASE}/orchestrators/hello_sequence/x", content=b"[1,").status_code == 400
    bad_id = http.post(f"{BASE}/orchestrators/hello_sequence/{'x' * 300}")
    assert bad_id.status_code == 400 and "256" in bad_id.json()["error"]


def test_status_with_history_and_without_input(http: TestClient) -> None:
    http.post(f"{BASE}/orchestrators/hello_sequence/hist", json="in")
    wait_done(http, f"{BASE}/instances/hist")
    body = http.get(
        f"{BASE}/instances/hist?showHistory=true&showHistoryOutput=true&showInput=false"
    ).json()
    assert body["input"] is None
    events = body["historyEvents"]
    assert [e["EventType"] for e in events] == [
        "ExecutionStarted",
        "TaskScheduled",
        "TaskCompleted",
        "TaskScheduled",
        "TaskCompleted",
        "ExecutionCompleted",
    ]
    assert events[2]["Result"] == "Hello Tokyo!"
    plain = http.get(f"{BASE}/instances/hist?showHistory=true").json()
    assert "Result" not in plain["historyEvents"][2]
    assert http.get(f"{BASE}/instances/hist?showHistory=maybe").status_code == 400
    assert http.get(f"{BASE}/instances/hist/").status_code == 200  # trailing slash accepted


def test_list_instances(http: TestClient) -> None:
    for n in range(3):
        http.post(f"{BASE}/orchestrators/hello_sequence/list-{n}")
    for n in range(3):
        wait_done(http, f"{BASE}/instances/list-{n}")
    page = http.get(f"{BASE}/instances?top=2&instanceIdPrefix=list-")
    assert page.status_code == 200
    token = page.headers["x-ms-continuation-token"]
    rest = http.get(
        f"{BASE}/instances?top=2&instanceIdPrefix=list-", headers={"x-ms-continuation-token": token}
    )
    ids = [s["instanceId"] for s in page.json() + rest.json()]
    assert sorted(ids) == ["list-0", "list-1", "list-2"]
    assert "x-ms-continuation-token" not in rest.headers
    assert http.get(f"{BASE}/instances?top=0").status_code == 400
    assert http.get(f"{BASE}/instances?runtimeStatus=Bogus").status_code == 400
    assert http.get(f"{BASE}/instances?createdTimeFrom=yesterday").status_code == 400


def test_http_trigger_values_and_returns(http: TestClient) -> None:
    got = http.post("/api/echo/bob/3?q=1", json={"a": [1]}).json()
    assert got == {
        "method": "POST",
        "route": {"name": "bob", "count": "3"},
        "params": {"q": "1"},
        "json": {"a": [1]},
    }
    assert http.get("/api/echo/bob").json()["route"] == {"name": "bob"}
    assert http.get("/api/echo/bob/notanint").status_code == 404
    text = http.get("/api/text")
    assert text.text == "plain" and text.headers["content-type"].startswith("text/plain")
    assert http.post("/api/text").status_code == 405
    assert (
        http.get("/api/echo/bob", headers={"content-type": "application/json"}).json()["json"]
        is None
    )
    broken = http.post("/api/echo/bob", content=b"{")
    assert broken.status_code == 400 and "error" in broken.json()


def test_unhandled_handler_error_is_a_500_without_internals(http: TestClient) -> None:
    response = http.get("/api/boom")
    assert response.status_code == 500
    assert "secret internals" not in response.text
    assert response.json()["error"].startswith("the function raised RuntimeError")


def test_body_over_the_limit_is_413(tmp_path: Path) -> None:
    config = HostConfig(storage=f"sqlite:///{tmp_path / 'durafn.db'}", max_body_bytes=100)
    with TestClient(build_asgi_app(build_app(), config)) as client:
        response = client.post(f"{BASE}/orchestrators/hello_sequence", content=b"1" * 101)
        assert response.status_code == 413
        assert client.get(f"{BASE}/instances").json() == []
