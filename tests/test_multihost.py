"""Several real `durafn start` hosts on one PostgreSQL database share the work (SPEC §8): a killed
host's work is finished by the survivors, one id starts once across hosts, timers fire once, and
work one host or client adds reaches the others through LISTEN/NOTIFY, not the next poll."""

import asyncio
import shutil
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hostproc import HostProcess

import durafn as df
from durafn.host.config import HostConfig
from durafn.runtime.config import RuntimeConfig

APP = Path(__file__).resolve().parent / "apps" / "multihost"
BASE = "/runtime/webhooks/durabletask"
LEASE_SECONDS = 2


@dataclass(frozen=True)
class Run:
    """One line of the activity log: which host ran what, when."""

    pid: int
    at: float
    fields: tuple[str, ...]


class Cluster:
    """Hosts serving the multihost app from one project folder, all on one database."""

    def __init__(self, folder: Path, storage: str) -> None:
        self.project = folder / "project"
        shutil.copytree(APP, self.project)
        self.log = folder / "activities.log"
        self.storage = storage
        self.hosts: list[HostProcess] = []

    def start(self, count: int) -> list[HostProcess]:
        started = []
        for n in range(count):
            env = {"DURAFN_MULTIHOST_LOG": str(self.log)}
            # the lease from the flag on the first host, from the environment on the others
            if n == 0:
                extra = ["--lease-seconds", str(LEASE_SECONDS)]
            else:
                extra, env["DURAFN_LEASE_SECONDS"] = [], str(LEASE_SECONDS)
            host = HostProcess(
                self.project, self.storage, "--workers-activity", "4", *extra, env=env
            )
            started.append(host)
            self.hosts.append(host)
        for host in started:
            host.wait_ready()
        return started

    def runs(self, kind: str) -> list[Run]:
        if not self.log.exists():
            return []
        runs = []
        for line in self.log.read_text().splitlines():
            pid, at, *fields = line.split(" ")
            if fields[0] == kind:
                runs.append(Run(int(pid), float(at), tuple(fields[1:])))
        return runs

    def stop(self) -> None:
        for host in self.hosts:
            host.stop(signal.SIGTERM)


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str) -> Iterator[Cluster]:
    """Hosts on a fresh PostgreSQL schema; stopped before the schema is dropped."""
    hosts = Cluster(tmp_path, postgres_url)
    yield hosts
    hosts.stop()


def wait_until_finished(
    http: httpx.Client, url: str, ids: list[str], timeout: float
) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    done: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline and len(done) < len(ids):
        for instance_id in ids:
            if instance_id not in done:
                body = http.get(f"{url}{BASE}/instances/{instance_id}?showHistory=true").json()
                if body["runtimeStatus"] not in ("Pending", "Running"):
                    done[instance_id] = body
        time.sleep(0.1)
    assert len(done) == len(ids), f"unfinished: {sorted(set(ids) - set(done))}"
    return done


def event_types(body: dict[str, Any]) -> list[str]:
    return [e["EventType"] for e in body["historyEvents"]]


@pytest.mark.postgres
def test_a_killed_hosts_instances_are_finished_by_the_survivor(cluster: Cluster) -> None:
    doomed, survivor = cluster.start(2)
    ids = [f"load-{n}" for n in range(60)]
    with httpx.Client(timeout=10) as http:
        for n, instance_id in enumerate(ids):
            started = http.post(f"{doomed.url}{BASE}/orchestrators/work/{instance_id}", json=n)
            assert started.status_code == 202, started.text

        # mid-load: both hosts have run activities, most are still to come
        pids = [doomed.proc.pid, survivor.proc.pid]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            before = [r.pid for r in cluster.runs("record")]
            if min(before.count(pid) for pid in pids) >= 5:
                break
            time.sleep(0.05)
        killed_at = time.time()
        doomed.kill()
        assert min(before.count(pid) for pid in pids) >= 5, before
        assert len(before) < len(ids) * 4 / 2, len(before)

        statuses = wait_until_finished(http, survivor.url, ids, timeout=40)

    for n, instance_id in enumerate(ids):
        body = statuses[instance_id]
        assert body["runtimeStatus"] == "Completed", body
        assert body["output"] == [f"{n}-{step}" for step in range(4)]
        assert event_types(body).count("ExecutionStarted") == 1
        assert event_types(body).count("TaskCompleted") == 4
    runs = cluster.runs("record")
    after = [r for r in runs if r.at > killed_at]
    assert after and {r.pid for r in after} == {survivor.proc.pid}
    # what the dead host was running ran again once its lease (2 s, not 30) had run out
    in_flight = {r.fields for r in runs if r.pid == doomed.proc.pid}
    rerun = [r for r in after if r.fields in in_flight]
    assert rerun
    assert all(r.at - killed_at < LEASE_SECONDS + 3 for r in rerun), rerun


@pytest.mark.postgres
def test_concurrent_starts_of_one_id_across_hosts_make_one_instance(cluster: Cluster) -> None:
    hosts = cluster.start(2)
    with (
        httpx.Client(timeout=30, limits=httpx.Limits(max_connections=40)) as http,
        ThreadPoolExecutor(40) as pool,
    ):
        for instance_id in ("one", "two", "three"):

            def start(n: int, instance_id: str = instance_id) -> int:
                url = f"{hosts[n % 2].url}{BASE}/orchestrators/hold/{instance_id}"
                return http.post(url, json=n).status_code

            codes = list(pool.map(start, range(40)))
            assert sorted(codes) == [202] + [409] * 39, codes

            raised = http.post(
                f"{hosts[1].url}{BASE}/instances/{instance_id}/raiseEvent/go", json=1
            )
            assert raised.status_code == 202, raised.text
        bodies = wait_until_finished(http, hosts[0].url, ["one", "two", "three"], timeout=15)
        listed = http.get(f"{hosts[0].url}{BASE}/instances").json()
    assert len(listed) == 3
    for body in bodies.values():
        assert body["runtimeStatus"] == "Completed"
        assert body["output"] == 1
        assert event_types(body).count("ExecutionStarted") == 1


@pytest.mark.postgres
def test_timers_fire_once_across_hosts_and_after_their_host_died(cluster: Cluster) -> None:
    hosts = cluster.start(3)
    ids = [f"alarm-{n}" for n in range(12)]
    with httpx.Client(timeout=10) as http:
        for n, instance_id in enumerate(ids):
            url = f"{hosts[n % 3].url}{BASE}/orchestrators/alarm/{instance_id}"
            assert http.post(url).status_code == 202
        time.sleep(0.5)  # the timers are recorded (2 s ahead); a third of them by this host
        hosts[2].kill()
        bodies = wait_until_finished(http, hosts[0].url, ids, timeout=20)

    rings = cluster.runs("ring")
    assert sorted(r.fields[0] for r in rings) == sorted(ids)  # each rang once
    assert {r.pid for r in rings} <= {hosts[0].proc.pid, hosts[1].proc.pid}
    for body in bodies.values():
        assert body["output"] == "rang"
        kinds = event_types(body)
        assert (kinds.count("TimerCreated"), kinds.count("TimerFired")) == (1, 1)
        fire_at = next(e["FireAt"] for e in body["historyEvents"] if e["EventType"] == "TimerFired")
        fired = next(r.at for r in rings if r.fields[0] == body["instanceId"])
        late = fired - datetime.fromisoformat(fire_at.replace("Z", "+00:00")).timestamp()
        assert 0 <= late < LEASE_SECONDS + 1, late  # on time, or once the dead host's lease ran out


@pytest.mark.postgres
def test_each_cron_run_is_made_by_one_host(cluster: Cluster) -> None:
    hosts = cluster.start(2)  # both schedule `tick` every second
    time.sleep(4)
    for host in hosts:
        host.stop(signal.SIGTERM)

    due_times = [run.fields[0] for run in cluster.runs("tick")]
    assert len(set(due_times)) >= 3
    assert len(due_times) == len(set(due_times)), due_times  # none made twice


@pytest.mark.postgres
def test_work_a_client_adds_is_picked_up_at_once_not_at_the_next_poll(postgres_url: str) -> None:
    app = df.App()

    @app.activity
    def double(n: int) -> int:
        return n * 2

    @app.orchestrator
    def chain(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        first = yield context.call_activity(double, context.get_input())
        second = yield context.wait_for_external_event("more")
        return first + second

    async def scenario() -> None:
        # polling every minute: only a notification can wake this host in time
        config = RuntimeConfig(poll_interval=60)
        async with (
            df.Runtime(app, postgres_url, config=config),
            df.DurableOrchestrationClient.from_storage(postgres_url, app=app) as client,
        ):
            began = time.monotonic()
            instance_id = await client.start_new("chain", None, 21)
            await client.raise_event(instance_id, "more", 100)
            status = await client.wait_for_completion(instance_id, timeout=10)
            assert status.output == 142
            assert time.monotonic() - began < 5

    asyncio.run(scenario())


def test_lease_seconds_come_from_the_flag_or_the_environment() -> None:
    assert HostConfig.from_env({}).runtime.lease_seconds == 30
    assert HostConfig.from_env({"DURAFN_LEASE_SECONDS": "2.5"}).runtime.lease_seconds == 2.5
    both = HostConfig.from_env(
        {"DURAFN_LEASE_SECONDS": "2.5"}, lease_seconds=4.0, activity_threads=3
    )
    assert both.runtime == RuntimeConfig(lease_seconds=4.0, activity_threads=3)
    for bad in ("soon", "0", "-1", "nan"):
        with pytest.raises(ValueError, match=r"(?i)lease"):
            HostConfig.from_env({"DURAFN_LEASE_SECONDS": bad})
