"""The benchmark shapes of issue 6, each measured on the embedded df.Runtime."""

from __future__ import annotations

import asyncio
import resource
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import durafn as df
from durafn.replay.executor import OrchestrationExecutor


def build_app() -> df.App:
    app = df.App()

    @app.activity
    async def step(value: int) -> int:
        return value + 1

    @app.orchestrator
    def three_steps(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        value = yield context.call_activity(step, 0)
        value = yield context.call_activity(step, value)
        value = yield context.call_activity(step, value)
        return value

    @app.orchestrator
    def chain(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        value = 0
        for _ in range(context.get_input()):
            value = yield context.call_activity(step, value)
        return value

    @app.orchestrator
    def fan_out(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        results = yield context.task_all(
            [context.call_activity(step, n) for n in range(context.get_input())]
        )
        return sum(results)

    @app.orchestrator
    def idle(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        value = yield context.wait_for_external_event("wake")
        return value

    return app


@dataclass
class Result:
    """One measured shape: its name, the figure, the unit and details."""

    shape: str
    value: float
    unit: str
    detail: str = ""


Scenario = Callable[[df.Runtime], Awaitable[list[Result]]]


async def throughput(rt: df.Runtime, count: int, in_flight: int) -> list[Result]:
    """``count`` 3-step orchestrations with ``in_flight`` at a time."""
    gate = asyncio.Semaphore(in_flight)

    async def one() -> None:
        async with gate:
            instance_id = await rt.client.start_new("three_steps")
            await rt.client.wait_for_completion(instance_id, 300)

    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    elapsed = time.perf_counter() - began
    return [
        Result(
            "3-step orchestrations",
            count / elapsed,
            "orch/s",
            f"{count} total, {in_flight} in flight, {count * 3 / elapsed:.0f} steps/s",
        )
    ]


async def latency(rt: df.Runtime, count: int) -> list[Result]:
    """Start-to-result latency of one 3-step orchestration at a time."""
    samples = []
    for _ in range(count):
        began = time.perf_counter()
        await rt.client.wait_for_completion(await rt.client.start_new("three_steps"), 60)
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return [
        Result("latency p50", statistics.median(samples), "ms", f"{count} runs"),
        Result("latency p99", p99, "ms", f"{count} runs"),
    ]


async def fan_out(rt: df.Runtime, width: int) -> list[Result]:
    """One fan-out/fan-in of ``width`` activities."""
    began = time.perf_counter()
    await rt.client.wait_for_completion(await rt.client.start_new("fan_out", None, width), 300)
    return [Result(f"fan-out/fan-in of {width}", (time.perf_counter() - began) * 1000, "ms")]


async def chains(rt: df.Runtime, length: int) -> list[Result]:
    """Sequential chains of ``length`` and ``2 * length`` steps, and the growth ratio."""
    figures = []
    for steps in (length, 2 * length):
        began = time.perf_counter()
        await rt.client.wait_for_completion(await rt.client.start_new("chain", None, steps), 600)
        figures.append(time.perf_counter() - began)
    # replay after a restart = rebuilding the executor from the stored history
    done = [df.OrchestrationRuntimeStatus.Completed]
    longest = (await rt.client.get_status_by(runtime_status=done))[-1]
    store = rt.client._store  # the benchmark reads the raw history the dispatcher would read
    history = await store.run(store.store.get_history, longest.instance_id)
    spec = rt.app.functions[[s.name for s in rt.app.functions].index("chain")]
    began = time.perf_counter()
    OrchestrationExecutor(spec.fn, instance_id=longest.instance_id, history=history)
    replay_ms = (time.perf_counter() - began) * 1000
    return [
        Result(f"chain of {length}", figures[0], "s"),
        Result(
            f"chain of {2 * length}", figures[1], "s", f"x{figures[1] / figures[0]:.2f} of {length}"
        ),
        Result(f"replay of {2 * length}-step history", replay_ms, "ms", f"{len(history)} events"),
    ]


async def idle_instances(rt: df.Runtime, count: int) -> list[Result]:
    """``count`` orchestrations waiting for an event: the host's peak RSS."""
    ids = [await rt.client.start_new("idle") for _ in range(count)]
    while True:
        pending = frozenset({df.OrchestrationRuntimeStatus.Pending})
        waiting = await rt.client.query(df.InstanceQuery(runtime_status=pending, top=1))
        if not waiting.statuses:
            break
        await asyncio.sleep(0.1)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del ids
    return [Result(f"{count} idle orchestrations", rss_mb, "MB RSS", "peak of this process")]


async def run_embedded(db: Path, scenario: Scenario, storage: str | None = None) -> list[Result]:
    """Run one scenario on a fresh store."""
    async with df.Runtime(build_app(), storage or f"sqlite:///{db}") as rt:
        return await scenario(rt)


def scenarios(quick: bool) -> list[tuple[str, Scenario]]:
    """The shapes to run, smaller with ``quick`` (the test suite's smoke run)."""
    scale = 10 if quick else 1
    return [
        ("throughput", lambda rt: throughput(rt, 1000 // scale, 16)),
        ("latency", lambda rt: latency(rt, 200 // scale)),
        ("fan-out", lambda rt: fan_out(rt, 100)),
        ("chains", lambda rt: chains(rt, 1000 // scale)),
        ("idle", lambda rt: idle_instances(rt, 100 if quick else 10_000)),
    ]


def as_dict(result: Result) -> dict[str, Any]:
    """A result as JSON."""
    return {
        "shape": result.shape,
        "value": round(result.value, 3),
        "unit": result.unit,
        "detail": result.detail,
    }
