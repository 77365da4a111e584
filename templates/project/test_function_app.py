"""Tests of the function app: the orchestration, run on a temporary SQLite file."""

import asyncio
from pathlib import Path

import durafn as df

import function_app


def test_orchestration_greets_each_city(tmp_path: Path) -> None:
    """FUNC_orchestrator greets each city of its input, in order."""
    storage = f"sqlite:///{tmp_path / 'test.db'}"

    async def scenario() -> df.DurableOrchestrationStatus:
        async with df.Runtime(function_app.app, storage=storage) as rt:
            cities = ["Oslo", "Lima"]
            instance_id = await rt.client.start_new("FUNC_orchestrator", None, cities)
            return await rt.client.wait_for_completion(instance_id, timeout=10)

    status = asyncio.run(scenario())
    assert status.runtime_status == df.OrchestrationRuntimeStatus.Completed
    assert status.output == ["Hello Oslo!", "Hello Lima!"]


def test_activity_is_a_plain_function() -> None:
    """Decorated functions stay plain callables, easy to unit-test."""
    assert function_app.FUNC_activity("Tokyo") == "Hello Tokyo!"
