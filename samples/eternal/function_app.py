"""Eternal orchestration: a loop that never grows its history, thanks to continue_as_new."""

from datetime import timedelta

import durafn as df

app = df.App(http_auth_level=df.AuthLevel.ANONYMOUS)


@app.route(route="counters/{instanceId}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_counter(req: df.HttpRequest, client: df.DurableOrchestrationClient):
    settings = req.get_json() or {}
    instance_id = await client.start_new(
        "periodic_cleanup", req.route_params["instanceId"], {"round": 0, **settings}
    )
    return client.create_check_status_response(req, instance_id)


@app.orchestrator
def periodic_cleanup(context: df.DurableOrchestrationContext):
    state = context.get_input()
    cleaned = yield context.call_activity(clean_up, state["round"])
    context.set_custom_status({"round": state["round"], "last": cleaned})
    if state.get("rounds") is not None and state["round"] + 1 >= state["rounds"]:
        return {"rounds": state["round"] + 1}
    yield context.create_timer(
        context.current_utc_datetime + timedelta(seconds=state.get("interval_seconds", 10))
    )
    # a fresh history for every round; events that arrived meanwhile carry over
    context.continue_as_new({**state, "round": state["round"] + 1})


@app.activity
def clean_up(round_number: int) -> str:
    return f"cleaned in round {round_number}"
