"""monitor: Poll a condition on a durable timer until it holds or time runs out.

POST /api/FUNC starts FUNC_orchestrator, which calls FUNC_activity every
interval until it says done or the monitor expires:
  curl -X POST http://127.0.0.1:7071/api/FUNC -d '{"job": "build-42"}'
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
    """Start FUNC_orchestrator with the settings in the JSON body."""
    settings = req.get_json() or {}
    instance_id = await client.start_new(FUNC_orchestrator, None, settings)
    return client.create_check_status_response(req, instance_id)


@app.orchestrator
def FUNC_orchestrator(
    context: df.DurableOrchestrationContext,
) -> Generator[df.Task, Any, dict[str, Any]]:
    """Check, sleep on a durable timer, check again: until done or expired."""
    settings = context.get_input()
    job = settings.get("job")
    interval = timedelta(seconds=settings.get("interval_seconds", 60))
    lifetime = timedelta(seconds=settings.get("expire_seconds", 3600))
    expires = context.current_utc_datetime + lifetime
    polls = 0
    while context.current_utc_datetime < expires:
        polls += 1
        check = {"job": job, "poll": polls}
        done = yield context.call_activity(FUNC_activity, check)
        context.set_custom_status({"polls": polls})
        if done:
            return {"job": job, "done": True, "polls": polls}
        yield context.create_timer(context.current_utc_datetime + interval)
    return {"job": job, "done": False, "polls": polls}


@app.activity
def FUNC_activity(check: dict[str, Any]) -> bool:
    """Whether the job is done: a stand-in that says yes on the third poll.

    Call the real status endpoint of your job here.
    """
    return bool(check["poll"] >= 3)
