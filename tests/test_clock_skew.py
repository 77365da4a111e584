"""Hosts whose clocks disagree still agree on time: on PostgreSQL a runtime goes by the database
server's clock, so a host whose clock runs ahead neither takes a live host's leases early nor
stamps work with a time the other hosts have not reached yet."""

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

import durafn as df
from durafn.runtime.config import RuntimeConfig

pytestmark = pytest.mark.postgres


def skewed(seconds: Callable[[], float]) -> Callable[[], datetime]:
    """A host clock that is ``seconds()`` off the real one."""
    return lambda: datetime.now(timezone.utc) + timedelta(seconds=seconds())


def test_a_host_whose_clock_runs_ahead_does_not_take_a_live_hosts_activity(
    postgres_url: str,
) -> None:
    app = df.App()
    release = threading.Event()
    runs: list[str] = []

    @app.activity
    def slow(name: str) -> str:
        runs.append(name)
        release.wait(10)
        return name

    @app.orchestrator
    def one(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        return (yield context.call_activity(slow, "x"))

    async def scenario() -> None:
        # the live host's leases run 30 s; the other host's clock is 120 s ahead of it
        config = RuntimeConfig(lease_seconds=30, poll_interval=0.1)
        async with df.Runtime(app, postgres_url, config=config) as live:
            instance_id = await live.client.start_new("one")
            while not runs:
                await asyncio.sleep(0.01)
            ahead = df.Runtime(app, postgres_url, config=config, clock=skewed(lambda: 120))
            async with ahead:
                await asyncio.sleep(1.5)  # fifteen of its polls
                assert len(runs) == 1, "the host ahead took over a live host's activity"
            release.set()
            status = await live.client.wait_for_completion(instance_id, timeout=10)
            assert status.output == "x"
        assert len(runs) == 1

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("at_start", "later", "lease_seconds"),
    # the step is measured at the next renewal, 0.2 s or 10 s away: on time either way
    [(3600.0, -7200.0, 0.6), (0.0, 3600.0, 30.0)],
    ids=["ahead-then-stepped-back", "stepped-forward"],
)
def test_a_timer_fires_on_time_when_its_hosts_clock_steps(
    postgres_url: str, at_start: float, later: float, lease_seconds: float
) -> None:
    app = df.App()

    @app.orchestrator
    def naps(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=2))
        return "woke"

    skew = [at_start]

    async def scenario() -> None:
        config = RuntimeConfig(lease_seconds=lease_seconds, poll_interval=0.1)
        clock = skewed(lambda: skew[0])
        async with df.Runtime(app, postgres_url, config=config, clock=clock) as rt:
            began = time.monotonic()
            instance_id = await rt.client.start_new("naps")
            await asyncio.sleep(0.3)  # the timer is set
            skew[0] = later  # the host's clock is stepped
            status = await rt.client.wait_for_completion(instance_id, timeout=10)
            assert status.output == "woke"
            assert time.monotonic() - began >= 1.9, "the timer fired early"
            assert status.last_updated_time is not None
            off = status.last_updated_time - datetime.now(timezone.utc)
            assert abs(off.total_seconds()) < 5, "stamped by the host's clock, not the server's"

    asyncio.run(scenario())


def waiting_app() -> df.App:
    app = df.App()

    @app.orchestrator
    def waits(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        return (yield context.wait_for_external_event("go"))

    return app


async def start_and_finish(client: df.DurableOrchestrationClient) -> None:
    """Start an instance and raise the event it waits for: both seen by the hosts at once."""
    instance_id = await client.start_new("waits")
    await client.raise_event(instance_id, "go", "now")
    # stamped an hour ahead, the start and the event would stay hidden for that hour
    status = await client.wait_for_completion(instance_id, timeout=10)
    assert status.output == "now"
    assert status.created_time is not None
    off = status.created_time - datetime.now(timezone.utc)
    assert abs(off.total_seconds()) < 5


@pytest.mark.parametrize(
    ("at_open", "later"),
    [(3600.0, 3600.0), (-3600.0, 0.0)],
    ids=["ahead", "slow-then-stepped-right"],
)
def test_a_clients_work_is_stamped_by_the_servers_clock(
    postgres_url: str, at_open: float, later: float
) -> None:
    app = waiting_app()
    skew = [at_open]

    async def scenario() -> None:
        config = RuntimeConfig(poll_interval=0.1)
        clock = skewed(lambda: skew[0])
        async with (
            df.Runtime(app, postgres_url, config=config),
            df.DurableOrchestrationClient.from_storage(
                postgres_url, app=app, clock=clock
            ) as client,
        ):
            skew[0] = later  # the same clock, or stepped by NTP after the client opened
            await start_and_finish(client)

    asyncio.run(scenario())
