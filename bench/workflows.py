"""The durafn functions the benchmarks run, on a Blueprint shared by the embedded app and the
HTTP bench app (bench/http_app)."""

from __future__ import annotations

import durafn as df

functions = df.Blueprint()


@functions.activity
async def step(value: int) -> int:
    """One step of work: ``value + 1``."""
    return value + 1


@functions.orchestrator
def three_steps(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    """Three steps in sequence from 0: returns 3."""
    value = yield context.call_activity(step, 0)
    value = yield context.call_activity(step, value)
    value = yield context.call_activity(step, value)
    return value


@functions.orchestrator
def chain(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    """As many steps in sequence as the input says: returns that number."""
    value = 0
    for _ in range(context.get_input()):
        value = yield context.call_activity(step, value)
    return value


@functions.orchestrator
def fan_out(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    """As many steps at once as the input says, then the sum of their results."""
    results = yield context.task_all(
        [context.call_activity(step, n) for n in range(context.get_input())]
    )
    return sum(results)


@functions.orchestrator
def idle(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    """Waits for the event "wake" (the idle-instances shape never sends it)."""
    value = yield context.wait_for_external_event("wake")
    return value


def build_app(http_auth_level: df.AuthLevel = df.AuthLevel.FUNCTION) -> df.App:
    """A fresh App holding the benchmark functions."""
    app = df.App(http_auth_level)
    app.register_functions(functions)
    return app
