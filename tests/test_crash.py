"""Kill -9 a real `durafn start` again and again under load: nothing started is lost, recorded
results are not recomputed, deterministic values survive replay (SPEC §9)."""

import itertools
import os
import random
import signal
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from hostproc import HostProcess

APP = Path(__file__).resolve().parent / "apps" / "crash"
BASE = "/runtime/webhooks/durabletask"
STEPS = ["a", "f0", "f1", "f2", "z"]


def run_crash_scenario(
    tmp_path: Path, instances: int, kills: int, storage: str | None = None
) -> None:
    """On a SQLite file of the test's own, or on ``storage``, where the hosts' leases last 2 s
    so that a killed host's work is taken over within the test's time.
    """
    project = tmp_path / "project"
    project.mkdir()
    (project / "function_app.py").write_text((APP / "function_app.py").read_text())
    log_path = tmp_path / "activities.log"
    env = {"DURAFN_CRASH_LOG": str(log_path)}
    if storage is None:
        storage = f"sqlite:///{tmp_path / 'crash.db'}"
    else:
        env["DURAFN_LEASE_SECONDS"] = "2"
    rng = random.Random(1234)
    # each kill as (just before SIGKILL, once the process is gone): until it is gone, the host
    # may still start an activity
    kills_at: list[tuple[float, float]] = []

    host = HostProcess(project, storage, env=env)
    host.wait_ready()
    ids = [f"crash-{n}" for n in range(instances)]
    with httpx.Client(timeout=10) as http:
        for n, instance_id in enumerate(ids):
            response = http.post(
                f"{host.url}{BASE}/orchestrators/work/{instance_id}", json={"n": n}
            )
            assert response.status_code == 202, response.text
        pending_events = list(ids)
        for _ in range(kills):
            # raise some events, then kill at a random moment of the load
            for instance_id in pending_events[: max(1, instances // kills)]:
                answer = http.post(
                    f"{host.url}{BASE}/instances/{instance_id}/raiseEvent/go", json=instance_id
                )
                assert answer.status_code == 202, answer.text
            pending_events = pending_events[max(1, instances // kills) :]
            time.sleep(rng.uniform(0.05, 0.6))
            before = time.time()
            host.kill()
            kills_at.append((before, time.time()))
            host = HostProcess(project, storage, env=env)
            host.wait_ready()
        for instance_id in pending_events:
            http.post(f"{host.url}{BASE}/instances/{instance_id}/raiseEvent/go", json=instance_id)

        deadline = time.monotonic() + 60
        statuses: dict[str, Any] = {}
        while time.monotonic() < deadline and len(statuses) < instances:
            for instance_id in ids:
                if instance_id in statuses:
                    continue
                body = http.get(f"{host.url}{BASE}/instances/{instance_id}?showHistory=true").json()
                if body["runtimeStatus"] not in ("Pending", "Running"):
                    statuses[instance_id] = body
            time.sleep(0.1)
    assert host.stop(signal.SIGTERM) == 0, host.output()
    assert len(statuses) == instances, f"unfinished: {set(ids) - set(statuses)}"

    starts: dict[tuple[str, str], list[tuple[float, str]]] = defaultdict(list)
    for line in log_path.read_text().splitlines():
        kind, instance_id, name, at, *rest = line.split(" ")
        if kind == "start":
            starts[(instance_id, name)].append((float(at), rest[0]))

    for n, instance_id in enumerate(ids):
        body = statuses[instance_id]
        assert body["runtimeStatus"] == "Completed", body
        output = body["output"]
        assert output["input"] == {"n": n}
        assert output["go"] == instance_id
        assert output["results"] == [f"{instance_id}:{name}" for name in STEPS]
        # new_uuid replayed to the value the first run passed to the activity
        first_run_marker = starts[(instance_id, "a")][0][1]
        assert output["marker"] == first_run_marker
        # current_utc_datetime replayed to the time of the first step
        scheduled = [e for e in body["historyEvents"] if e["EventType"] == "TaskScheduled"]
        assert output["began"].replace("+00:00", "Z") == scheduled[0]["Timestamp"]
        for name in STEPS:
            runs = sorted(at for at, _ in starts[(instance_id, name)])
            assert runs, f"{instance_id}/{name} never ran"
            # a re-run happens only across a kill: the activity was in flight when it came
            for earlier, later in itertools.pairwise(runs):
                assert any(before <= later and earlier <= gone for before, gone in kills_at), (
                    instance_id,
                    name,
                    runs,
                    kills_at,
                )


def test_kill_9_repeatedly_loses_nothing(tmp_path: Path) -> None:
    run_crash_scenario(
        tmp_path, instances=int(os.environ.get("DURAFN_CRASH_INSTANCES", 20)), kills=3
    )


@pytest.mark.postgres
def test_kill_9_repeatedly_loses_nothing_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    # PostgreSQL sends a step's writes and COMMIT before its guard answers: a kill can land
    # with any part of that on the wire
    run_crash_scenario(tmp_path, instances=20, kills=3, storage=postgres_url)


@pytest.mark.slow
def test_kill_9_many_times_under_more_load(tmp_path: Path) -> None:
    run_crash_scenario(tmp_path, instances=60, kills=8)
