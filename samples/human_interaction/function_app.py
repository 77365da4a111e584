"""Human interaction: wait for an approval event, or give up when a durable timer fires first."""

from datetime import timedelta

import durafn as df

app = df.App(http_auth_level=df.AuthLevel.ANONYMOUS)


@app.route(route="approvals", methods=["POST"])
@app.durable_client_input(client_name="client")
async def request_approval(req: df.HttpRequest, client: df.DurableOrchestrationClient):
    instance_id = await client.start_new("approval_workflow", None, req.get_json())
    return client.create_check_status_response(req, instance_id)


@app.route(route="approvals/{instanceId}/approve", methods=["POST"])
@app.durable_client_input(client_name="client")
async def approve(req: df.HttpRequest, client: df.DurableOrchestrationClient):
    await client.raise_event(req.route_params["instanceId"], "Approval", req.get_json())
    return df.HttpResponse(status_code=202)


@app.orchestrator
def approval_workflow(context: df.DurableOrchestrationContext):
    request = context.get_input() or {}
    yield context.call_activity(send_approval_request, request)
    deadline = context.current_utc_datetime + timedelta(
        seconds=request.get("timeout_seconds", 3600)
    )
    timeout = context.create_timer(deadline)
    approval = context.wait_for_external_event("Approval")
    winner = yield context.task_any([approval, timeout])
    if winner == approval:
        timeout.cancel()
        outcome = yield context.call_activity(process_approval, approval.result)
        return outcome
    return "escalated: no approval before the deadline"


@app.activity
def send_approval_request(request: dict) -> str:
    return f"approval requested for {request.get('item', 'something')}"


@app.activity
def process_approval(approval: dict | None) -> str:
    approver = (approval or {}).get("by", "someone")
    return f"approved by {approver}"
