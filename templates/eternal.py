"""eternal: An endless loop with continue_as_new, its history kept short.

POST /api/FUNC/{instanceId} starts FUNC_orchestrator under that id; each round
calls FUNC_activity, sleeps on a durable timer and starts afresh (pass "rounds"
to stop after that many):
  curl -X POST http://127.0.0.1:7071/api/FUNC/cleanup -d '{"interval_seconds": 60}'
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
    """Start FUNC_orchestrator as {instanceId}, from round 0."""
    settings = {"round": 0, **(req.get_json() or {})}
    instance_id = req.route_params["instanceId"]
    await client.start_new(FUNC_orchestrator, instance_id, settings)
    return client.create_check_status_response(req, instance_id)


@app.orchestrator
def FUNC_orchestrator(
    context: df.DurableOrchestrationContext,
) -> Generator[df.Task, Any, dict[str, int] | None]:
    """One round of work, a durable sleep, then continue_as_new."""
    state = context.get_input()
    round_number = state["round"]
    result = yield context.call_activity(FUNC_activity, round_number)
    context.set_custom_status({"round": round_number, "last": result})
    rounds = state.get("rounds")
    if rounds is not None and round_number + 1 >= rounds:
        return {"rounds": round_number + 1}
    interval = timedelta(seconds=state.get("interval_seconds", 60))
    yield context.create_timer(context.current_utc_datetime + interval)
    # a fresh history for every round; events that arrived meanwhile carry over
    context.continue_as_new({**state, "round": round_number + 1})
    return None


@app.activity
def FUNC_activity(round_number: int) -> str:
    """The periodic work."""
    return f"round {round_number} done"
