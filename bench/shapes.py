"""The benchmark shapes of issue 6 on the embedded df.Runtime: the common ones (bench/measure.py)
through :class:`DurafnEngine`, plus replay, which only durafn has (idle instances, also durafn's
alone, run in a process of their own: bench/idle.py)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import durafn as df
from bench.measure import BenchError, Result, Shape, common_shapes
from bench.workflows import build_app
from durafn.replay.executor import OrchestrationExecutor

Scenario = Callable[[df.Runtime], Awaitable[list[Result]]]


class DurafnEngine:
    """The common shapes' :class:`~bench.measure.Engine` on a running df.Runtime."""

    def __init__(self, rt: df.Runtime) -> None:
        self.rt = rt

    async def run(self, name: str, input_: Any = None, timeout: float = 600) -> Any:
        """Start orchestration ``name`` and return its output once it completes."""
        status = await self.rt.client.wait_for_completion(
            await self.rt.client.start_new(name, None, input_), timeout
        )
        if status.runtime_status is not df.OrchestrationRuntimeStatus.Completed:
            raise BenchError(f"{name} ended {status.runtime_status.value}: {status.output!r}")
        return status.output

    async def three_steps(self) -> Any:
        """Run ``three_steps``; its output."""
        return await self.run("three_steps", timeout=60)

    async def fan_out(self, width: int) -> Any:
        """Run ``fan_out`` of ``width`` activities; its output."""
        return await self.run("fan_out", width)

    async def chain(self, steps: int) -> Any:
        """Run ``chain`` of ``steps`` activities; its output."""
        return await self.run("chain", steps)


async def replay_longest_chain(rt: df.Runtime) -> Result:
    """Replay after a restart: rebuild the executor of the longest completed chain's history."""
    done = [df.OrchestrationRuntimeStatus.Completed]
    longest = (await rt.client.get_status_by(runtime_status=done))[-1]
    store = rt.client._store  # the benchmark reads the raw history the dispatcher would read
    history = await store.run(store.store.get_history, longest.instance_id)
    spec = rt.app.functions[[s.name for s in rt.app.functions].index("chain")]
    began = time.perf_counter()
    OrchestrationExecutor(spec.fn, instance_id=longest.instance_id, history=history)
    replay_ms = (time.perf_counter() - began) * 1000
    steps = longest.input_
    return Result(f"replay of {steps}-step history", replay_ms, "ms", f"{len(history)} events")


async def run_embedded(storage: str, scenario: Scenario) -> list[Result]:
    """Run one scenario on the store at ``storage``."""
    async with df.Runtime(build_app(), storage) as rt:
        return await scenario(rt)


def on_durafn(shape: Shape) -> Scenario:
    """A common shape as a scenario on the embedded runtime."""
    return lambda rt: shape(DurafnEngine(rt))


def scenarios(quick: bool) -> list[tuple[str, Scenario]]:
    """The shapes to run, by name, smaller with ``quick`` (the test suite's smoke run).

    The common ones keep their names from :func:`bench.measure.common_shapes`, which is how
    ``--compare-dbos`` finds DBOS's counterpart.
    """
    common = common_shapes(quick)

    async def chains_then_replay(rt: df.Runtime) -> list[Result]:
        # the replay needs the long chain this scenario has just stored
        return [*await common["chains"](DurafnEngine(rt)), await replay_longest_chain(rt)]

    return [
        ("throughput", on_durafn(common["throughput"])),
        ("latency", on_durafn(common["latency"])),
        ("fan-out", on_durafn(common["fan-out"])),
        ("chains", chains_then_replay),
    ]
