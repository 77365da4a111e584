"""Every sample, served by the real Starlette host on a real SQLite file and driven over HTTP."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from durafn.discovery import load_app
from durafn.host.asgi import build_asgi_app
from durafn.host.config import HostConfig

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
BASE = "/runtime/webhooks/durabletask"


def serve(sample: str, tmp_path: Path) -> TestClient:
    app = load_app(folder=SAMPLES / sample)
    config = HostConfig(storage=f"sqlite:///{tmp_path / 'durafn.db'}")
    return TestClient(build_asgi_app(app, config), base_url="http://127.0.0.1:7071")


def wait_done(http: TestClient, url: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = http.get(url)
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
        assert response.status_code == 202, response.text
        time.sleep(0.02)
    raise AssertionError(f"{url} did not finish in {timeout} s")


@pytest.fixture
def sample_client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    with serve(request.param, tmp_path) as client:
        yield client


@pytest.mark.parametrize("sample_client", ["function_chaining"], indirect=True)
def test_function_chaining(sample_client: TestClient) -> None:
    started = sample_client.post("/api/orchestrators/hello_sequence/chain-1")
    assert started.status_code == 202
    body = wait_done(sample_client, started.json()["statusQueryGetUri"])
    assert body["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


@pytest.mark.parametrize("sample_client", ["fan_out_fan_in"], indirect=True)
def test_fan_out_fan_in(sample_client: TestClient) -> None:
    started = sample_client.post("/api/fanout", json={"count": 40})
    body = wait_done(sample_client, started.json()["statusQueryGetUri"])
    assert body["output"] == {"items": 40, "total": 6240}
    assert body["customStatus"] == {"processed": 40}


@pytest.mark.parametrize("sample_client", ["singleton"], indirect=True)
def test_singleton(sample_client: TestClient) -> None:
    first = sample_client.post("/api/orchestrators/nightly_job/job-1")
    assert first.status_code == 202
    again = sample_client.post("/api/orchestrators/nightly_job/job-1")
    assert again.status_code == 409
    stop = sample_client.post(f"{BASE}/instances/job-1/raiseEvent/stop", json="done")
    assert stop.status_code == 202
    assert wait_done(sample_client, f"{BASE}/instances/job-1")["output"] == "stopped: done"
    assert sample_client.post("/api/orchestrators/nightly_job/job-1").status_code == 202


@pytest.mark.parametrize("sample_client", ["human_interaction"], indirect=True)
def test_human_interaction_approval_and_timeout(sample_client: TestClient) -> None:
    approved = sample_client.post("/api/approvals", json={"item": "laptop", "timeout_seconds": 30})
    instance_id = approved.json()["id"]
    # the approval may arrive before the orchestrator waits for it: it is buffered
    assert (
        sample_client.post(f"/api/approvals/{instance_id}/approve", json={"by": "ana"}).status_code
        == 202
    )
    assert (
        wait_done(sample_client, f"{BASE}/instances/{instance_id}")["output"] == "approved by ana"
    )

    started = time.monotonic()
    ignored = sample_client.post("/api/approvals", json={"item": "car", "timeout_seconds": 1})
    body = wait_done(sample_client, ignored.json()["statusQueryGetUri"])
    assert body["output"] == "escalated: no approval before the deadline"
    assert time.monotonic() - started >= 1.0
    late = sample_client.post(f"/api/approvals/{body['instanceId']}/approve", json={})
    assert late.status_code == 410


@pytest.mark.parametrize("sample_client", ["monitor"], indirect=True)
def test_monitor(sample_client: TestClient) -> None:
    started = sample_client.post("/api/monitors/build-42", json={"interval_seconds": 0.2})
    body = wait_done(sample_client, started.json()["statusQueryGetUri"])
    assert body["output"] == {"job": "build-42", "finished": True, "polls": 3}
    history = sample_client.get(f"{BASE}/instances/{body['instanceId']}?showHistory=true").json()
    kinds = [e["EventType"] for e in history["historyEvents"]]
    assert kinds.count("TimerCreated") == 2 and kinds.count("TimerFired") == 2


@pytest.mark.parametrize("sample_client", ["eternal"], indirect=True)
def test_eternal(sample_client: TestClient) -> None:
    started = sample_client.post(
        "/api/counters/cleanup", json={"interval_seconds": 0.05, "rounds": 4}
    )
    body = wait_done(sample_client, started.json()["statusQueryGetUri"])
    assert body["output"] == {"rounds": 4}
    assert body["customStatus"] == {"round": 3, "last": "cleaned in round 3"}
    assert body["input"]["round"] == 3
    history = sample_client.get(f"{BASE}/instances/cleanup?showHistory=true").json()[
        "historyEvents"
    ]
    # continue_as_new keeps only the last round's history
    assert [e["EventType"] for e in history].count("ExecutionStarted") == 1
    assert [e["EventType"] for e in history].count("TaskScheduled") == 1
