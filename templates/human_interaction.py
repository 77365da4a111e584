"""human-interaction: Wait for an approval event, or escalate after a timeout.

POST /api/FUNC starts FUNC_orchestrator; POST /api/FUNC/{instanceId}/approve
sends the approval:
  curl -X POST http://127.0.0.1:7071/api/FUNC -d '{"timeout_seconds": 3600}'
  curl -X POST http://127.0.0.1:7071/api/FUNC/<id>/approve -d '{"by": "Ada"}'
"""

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import durafn as df

app = df.App(http_auth_level=df.AuthLevel.ANONYMOUS)


@app.route(route="FUNC", methods=["POST"])
@app.durable_client_input(client_name="client")
async def FUNC(
    req: df.HttpRequest, client: df.DurableOrchestrationClient
) -> df.HttpResponse:
    """Start FUNC_orchestrator for the request in the JSON body."""
    instance_id = await client.start_new(FUNC_orchestrator, None, req.get_json())
    return client.create_check_status_response(req, instance_id)


@app.route(route="FUNC/{instanceId}/approve", methods=["POST"])
@app.durable_client_input(client_name="client")
async def FUNC_approve(
    req: df.HttpRequest, client: df.DurableOrchestrationClient
) -> df.HttpResponse:
    """Raise the Approval event; an early event is kept until awaited."""
    instance_id = req.route_params["instanceId"]
    await client.raise_event(instance_id, "Approval", req.get_json())
    return df.HttpResponse(status_code=202)


@app.orchestrator
def FUNC_orchestrator(
    context: df.DurableOrchestrationContext,
) -> Generator[df.Task, Any, str]:
    """Whichever comes first wins: the Approval event or the timer."""
    request = context.get_input() or {}
    timeout = timedelta(seconds=request.get("timeout_seconds", 3600))
    timer = context.create_timer(context.current_utc_datetime + timeout)
    approval = context.wait_for_external_event("Approval")
    winner = yield context.task_any([approval, timer])
    if winner == approval:
        timer.cancel()
        outcome = yield context.call_activity(FUNC_activity, approval.result)
        return str(outcome)
    return f"escalated: no approval within {timeout.total_seconds():g} s"


@app.activity
def FUNC_activity(approval: dict[str, Any] | None) -> str:
    """Act on the approval (the event's data)."""
    return f"approved by {(approval or {}).get('by', 'someone')}"
