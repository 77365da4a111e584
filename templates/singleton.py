"""singleton: Start an orchestration unless one with that id is running.

POST /api/FUNC/{instanceId} starts FUNC_orchestrator under that id; while it
runs, another start of that id is answered 409 (the store decides atomically,
so concurrent starts are safe):
  curl -X POST http://127.0.0.1:7071/api/FUNC/nightly -d '{"delay_seconds": 30}'
"""

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import durafn as df

app = df.App(http_auth_level=df.AuthLevel.ANONYMOUS)


@app.route(route="FUNC/{instanceId}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def FUNC(
    req: df.HttpRequest, client: df.DurableOrchestrationClient
) -> df.HttpResponse:
    """Start FUNC_orchestrator as {instanceId} unless it is still active."""
    instance_id = req.route_params["instanceId"]
    existing = await client.get_status(instance_id)
    if existing is None or existing.runtime_status in (
        df.OrchestrationRuntimeStatus.Completed,
        df.OrchestrationRuntimeStatus.Failed,
        df.OrchestrationRuntimeStatus.Terminated,
    ):
        # a request that won the race since get_status makes this a 409
        await client.start_new(FUNC_orchestrator, instance_id, req.get_json())
        return client.create_check_status_response(req, instance_id)
    message = f"An instance with ID '{instance_id}' already exists."
    return df.HttpResponse(message, status_code=409)


@app.orchestrator
def FUNC_orchestrator(
    context: df.DurableOrchestrationContext,
) -> Generator[df.Task, Any, str]:
    """A long-running job: wait on a durable timer, then do the work."""
    settings = context.get_input() or {}
    delay = timedelta(seconds=settings.get("delay_seconds", 10))
    yield context.create_timer(context.current_utc_datetime + delay)
    result = yield context.call_activity(FUNC_activity, context.instance_id)
    return str(result)


@app.activity
def FUNC_activity(job: str) -> str:
    """The job's work."""
    return f"{job} done"
