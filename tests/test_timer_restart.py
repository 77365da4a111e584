"""A durable timer fires at its recorded time even when the host was killed in between."""

import shutil
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from hostproc import HostProcess

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
BASE = "/runtime/webhooks/durabletask"


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def finished(url: str, instance_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        body: dict[str, Any] = httpx.get(
            f"{url}{BASE}/instances/{instance_id}?showHistory=true"
        ).json()
        if body["runtimeStatus"] == "Completed":
            return body
        time.sleep(0.05)
    raise AssertionError(f"{instance_id} did not finish")


def test_timer_fires_on_time_across_a_kill(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(SAMPLES / "human_interaction", project)
    storage = f"sqlite:///{tmp_path / 'durafn.db'}"
    host = HostProcess(project, storage)
    host.wait_ready()
    ids = []
    for _ in range(2):
        started = httpx.post(f"{host.url}/api/approvals", json={"item": "x", "timeout_seconds": 2})
        ids.append(started.json()["id"])
    time.sleep(0.3)  # both timers are recorded by now
    host.kill()

    # restarted before the fire time: the timer still fires when it was due, not 2 s later
    host = HostProcess(project, storage)
    host.wait_ready()
    body = finished(host.url, ids[0])
    assert body["output"] == "escalated: no approval before the deadline"
    events = {e["EventType"]: e for e in body["historyEvents"]}
    fire_at = parse(events["TimerCreated"]["FireAt"])
    assert events["TimerFired"]["FireAt"] == events["TimerCreated"]["FireAt"]
    fired_late_by = (parse(body["lastUpdatedTime"]) - fire_at).total_seconds()
    assert 0 <= fired_late_by < 1.0, fired_late_by
    host.kill()

    # the other instance finished too, and stays finished across another restart
    host = HostProcess(project, storage)
    host.wait_ready()
    assert finished(host.url, ids[1])["output"] == "escalated: no approval before the deadline"
    assert host.stop(signal.SIGINT) == 0
