"""Monitor: poll a condition on durable timers until it holds or the monitor expires."""

from datetime import timedelta

import durafn as df

app = df.App(http_auth_level=df.AuthLevel.ANONYMOUS)

CHECKS: dict[str, int] = {}


@app.route(route="monitors/{job}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_monitor(req: df.HttpRequest, client: df.DurableOrchestrationClient):
    settings = req.get_json() or {}
    settings["job"] = req.route_params["job"]
    instance_id = await client.start_new("job_monitor", None, settings)
    return client.create_check_status_response(req, instance_id)


@app.orchestrator
def job_monitor(context: df.DurableOrchestrationContext):
    settings = context.get_input()
    interval = timedelta(seconds=settings.get("interval_seconds", 5))
    expires = context.current_utc_datetime + timedelta(seconds=settings.get("expire_seconds", 60))
    polls = 0
    while context.current_utc_datetime < expires:
        polls += 1
        done = yield context.call_activity(check_job, settings["job"])
        context.set_custom_status({"polls": polls})
        if done:
            return {"job": settings["job"], "finished": True, "polls": polls}
        yield context.create_timer(context.current_utc_datetime + interval)
    return {"job": settings["job"], "finished": False, "polls": polls}


@app.activity
def check_job(job: str) -> bool:
    """Stands in for a status check of an external job: it reports done on the third check."""
    CHECKS[job] = CHECKS.get(job, 0) + 1
    return CHECKS[job] >= 3
