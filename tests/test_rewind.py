"""Rewind: a Failed instance retries the work whose failure failed it, and goes on from there."""

import contextlib
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


def build_app(broken: set[str], runs: list[str]) -> df.App:
    app = df.App()

    @app.activity
    def fragile(key: str) -> str:
        runs.append(key)
        if key in broken:
            raise RuntimeError(f"{key} is broken")
        return f"{key} ok"

    @app.orchestrator
    def pipeline(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        first = yield context.call_activity(fragile, "first")
        with contextlib.suppress(df.TaskFailedError):
            yield context.call_activity(fragile, "handled")
        second = yield context.call_activity(fragile, "second")
        return [first, second]

    @app.orchestrator
    def parent(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        result = yield context.call_sub_orchestrator(pipeline, None, instance_id="child-1")
        return {"child": result}

    @app.orchestrator
    def own_bug(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        yield context.call_activity(fragile, "first")
        raise ValueError("a bug in the orchestrator itself")

    return app


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[TestClient, set[str], list[str]]]:
    broken = {"second", "handled"}
    runs: list[str] = []
    config = HostConfig(storage=f"sqlite:///{tmp_path / 'durafn.db'}")
    with TestClient(build_asgi_app(build_app(broken, runs), config)) as client:
        yield client, broken, runs


def wait_status(http: TestClient, instance_id: str, wanted: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body: dict[str, Any] = http.get(f"{BASE}/instances/{instance_id}?showHistory=true").json()
        if body.get("runtimeStatus") == wanted:
            return body
        time.sleep(0.02)
    raise AssertionError(f"{instance_id} never became {wanted}")


def test_rewind_reruns_only_the_failed_work(world: tuple[TestClient, set[str], list[str]]) -> None:
    http, broken, runs = world
    assert http.post(f"{BASE}/orchestrators/pipeline/p1").status_code == 202
    failed = wait_status(http, "p1", "Failed")
    assert "second is broken" in failed["output"]["message"]
    assert runs == ["first", "handled", "second"]

    broken.discard("second")  # the outage is over
    assert http.post(f"{BASE}/instances/p1/rewind?reason=fixed").status_code == 202
    done = wait_status(http, "p1", "Completed")
    assert done["output"] == ["first ok", "second ok"]
    # 'first' succeeded and 'handled' failed in a handled way: neither runs again
    assert runs == ["first", "handled", "second", "second"]
    kinds = [e["EventType"] for e in done["historyEvents"]]
    assert kinds.count("ExecutionCompleted") == 1 and kinds.count("TaskFailed") == 1

    assert http.post(f"{BASE}/instances/p1/rewind").status_code == 410  # Completed now
    assert http.post(f"{BASE}/instances/nope/rewind").status_code == 404


def test_rewind_a_parent_rewinds_its_failed_child(
    world: tuple[TestClient, set[str], list[str]],
) -> None:
    http, broken, _ = world
    http.post(f"{BASE}/orchestrators/parent/par")
    wait_status(http, "par", "Failed")
    wait_status(http, "child-1", "Failed")
    broken.discard("second")
    assert http.post(f"{BASE}/instances/par/rewind").status_code == 202
    assert wait_status(http, "par", "Completed")["output"] == {"child": ["first ok", "second ok"]}
    assert wait_status(http, "child-1", "Completed")["output"] == ["first ok", "second ok"]


def test_rewind_refuses_a_failure_in_the_orchestrator_code(
    world: tuple[TestClient, set[str], list[str]],
) -> None:
    http, _, _ = world
    http.post(f"{BASE}/orchestrators/own_bug/bug")
    wait_status(http, "bug", "Failed")
    response = http.post(f"{BASE}/instances/bug/rewind")
    assert response.status_code == 410
    assert "own code" in response.json()["error"]
    assert wait_status(http, "bug", "Failed")["output"]["error"] == "ValueError"
