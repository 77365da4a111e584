"""What durafn and DBOS share: the result record, the timing helpers and the common shapes.

Each common shape is written once against :class:`Engine` (start a workflow, wait for its
output), so both engines are measured by the same code. This module imports neither engine:
the DBOS subprocess imports it without loading durafn.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class BenchError(Exception):
    """A run that cannot give a figure: a wrong result, a failed request, a crashed peer."""


@dataclass
class Result:
    """One measured shape: its name, the figure, the unit and details."""

    shape: str
    value: float
    unit: str
    detail: str = ""

    @property
    def higher_is_better(self) -> bool:
        """Rates (``orch/s``, ``req/s``) grow with speed; durations and sizes shrink."""
        return self.unit.endswith("/s")


def as_dict(result: Result) -> dict[str, Any]:
    """A result as JSON."""
    return {
        "shape": result.shape,
        "value": round(result.value, 3),
        "unit": result.unit,
        "detail": result.detail,
    }


def from_dict(data: dict[str, Any]) -> Result:
    """A result read back from :func:`as_dict`'s JSON."""
    return Result(data["shape"], float(data["value"]), data["unit"], data.get("detail", ""))


def median_round(results: list[Result]) -> Result:
    """The round whose figure is the median (the lower one of an even count), its detail saying
    so: the details (a chain's growth, say) are that round's own.
    """
    if len(results) == 1:
        return results[0]
    middle = statistics.median_low(r.value for r in results)
    chosen = next(r for r in results if r.value == middle)
    detail = f"{chosen.detail}; " if chosen.detail else ""
    detail += f"median of {len(results)} rounds"
    return Result(chosen.shape, chosen.value, chosen.unit, detail)


def percentile(samples: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``samples`` (``fraction`` 0.5 = median, 0.99 = p99)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def timed(work: Awaitable[T]) -> tuple[float, T]:
    """Seconds ``work`` takes to finish, and its value."""
    began = time.perf_counter()
    value = await work
    return time.perf_counter() - began, value


async def run_concurrently(
    one: Callable[[], Awaitable[object]], count: int, in_flight: int
) -> float:
    """Seconds to run ``one()`` ``count`` times, at most ``in_flight`` at a time."""
    gate = asyncio.Semaphore(in_flight)

    async def gated() -> None:
        async with gate:
            await one()

    seconds, _ = await timed(asyncio.gather(*(gated() for _ in range(count))))
    return seconds


def expect(got: object, wanted: object, what: str) -> None:
    """Fail the run when a workflow returned the wrong value: a figure must measure real work."""
    if got != wanted:
        raise BenchError(f"{what} returned {got!r}, expected {wanted!r}")


class Engine(Protocol):
    """A durable-workflow engine as the common shapes drive it: start one, wait for its output."""

    async def three_steps(self) -> Any:
        """Run a workflow of three sequential steps, each adding 1 to 0; its output (3)."""

    async def fan_out(self, width: int) -> Any:
        """Run ``width`` steps n + 1 concurrently in one workflow; the sum of their results."""

    async def chain(self, steps: int) -> Any:
        """Run ``steps`` sequential steps, each adding 1; the output (``steps``)."""


async def three_steps(engine: Engine) -> float:
    """Seconds from start to result of one 3-step workflow."""
    seconds, output = await timed(engine.three_steps())
    expect(output, 3, "a 3-step workflow")
    return seconds


async def throughput(engine: Engine, count: int, in_flight: int) -> list[Result]:
    """``count`` 3-step workflows with ``in_flight`` at a time."""
    seconds = await run_concurrently(lambda: three_steps(engine), count, in_flight)
    detail = f"{count} total, {in_flight} in flight, {count * 3 / seconds:.0f} steps/s"
    return [Result("3-step orchestrations", count / seconds, "orch/s", detail)]


async def latency(engine: Engine, count: int, warm_up: int) -> list[Result]:
    """Start-to-result latency of one 3-step workflow at a time, once ``warm_up`` unmeasured
    runs have filled both engines' caches (prepared statements, plans, pages): the steady state.
    """
    for _ in range(warm_up):
        await three_steps(engine)
    samples = [await three_steps(engine) * 1000 for _ in range(count)]
    detail = f"{count} runs after {warm_up} unmeasured"
    return [
        Result("latency p50", statistics.median(samples), "ms", detail),
        Result("latency p99", percentile(samples, 0.99), "ms", detail),
    ]


async def fan_out(engine: Engine, width: int, rounds: int) -> list[Result]:
    """A fan-out/fan-in of ``width`` steps, the median of ``rounds`` runs."""
    samples = []
    for _ in range(rounds):
        seconds, output = await timed(engine.fan_out(width))
        expect(output, width * (width + 1) // 2, f"a fan-out of {width}")
        samples.append(seconds * 1000)
    detail = f"median of {rounds}" if rounds > 1 else ""
    return [Result(f"fan-out/fan-in of {width}", statistics.median(samples), "ms", detail)]


async def chains(engine: Engine, length: int, rounds: int) -> list[Result]:
    """Sequential chains of ``length`` and ``2 * length`` steps, each the median of ``rounds``
    runs (the lengths taking turns, so a noisy moment does not land on one length only), and
    the growth ratio."""
    samples: dict[int, list[float]] = {length: [], 2 * length: []}
    for _ in range(rounds):
        for steps, seconds_taken in samples.items():
            seconds, output = await timed(engine.chain(steps))
            expect(output, steps, f"a chain of {steps}")
            seconds_taken.append(seconds)
    short, long = (statistics.median(samples[n]) for n in (length, 2 * length))
    note = f"median of {rounds}" if rounds > 1 else ""
    growth = f"x{long / short:.2f} of {length}"
    return [
        Result(f"chain of {length}", short, "s", note),
        Result(f"chain of {2 * length}", long, "s", f"{note}, {growth}" if note else growth),
    ]


Shape = Callable[[Engine], Coroutine[Any, Any, list[Result]]]


def latency_runs(quick: bool) -> tuple[int, int]:
    """The latency shape's measured and unmeasured runs, fewer with ``quick``; the commit
    floor (bench/floor.py) measures as many."""
    return (50, 5) if quick else (500, 50)


def common_shapes(quick: bool) -> dict[str, Shape]:
    """The shapes both engines run, by name, smaller with ``quick`` (the test suite's run)."""
    scale = 10 if quick else 1
    return {
        "throughput": lambda engine: throughput(engine, 1000 // scale, 16),
        "latency": lambda engine: latency(engine, *latency_runs(quick)),
        "fan-out": lambda engine: fan_out(engine, 100, 1 if quick else 5),
        "chains": lambda engine: chains(engine, 1000 // scale, 1 if quick else 3),
    }
