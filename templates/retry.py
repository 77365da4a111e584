"""retry: Call a flaky activity with automatic retries (df.RetryOptions).

POST /api/FUNC starts FUNC_orchestrator; FUNC_activity stands in for a flaky
call that fails its first "fail_times" attempts:
  curl -X POST http://127.0.0.1:7071/api/FUNC -d '{"fail_times": 2}'
"""

from collections.abc import Generator
from typing import Any

import durafn as df

app = df.App(http_auth_level=df.AuthLevel.ANONYMOUS)

FUNC_attempts: dict[str, int] = {}


@app.route(route="FUNC", methods=["POST"])
@app.durable_client_input(client_name="client")
async def FUNC(
    req: df.HttpRequest, client: df.DurableOrchestrationClient
) -> df.HttpResponse:
    """Start FUNC_orchestrator with the JSON body as its input."""
    settings = req.get_json() or {}
    instance_id = await client.start_new(FUNC_orchestrator, None, settings)
    return client.create_check_status_response(req, instance_id)


@app.orchestrator
def FUNC_orchestrator(
    context: df.DurableOrchestrationContext,
) -> Generator[df.Task, Any, dict[str, Any]]:
    """Up to 3 attempts, 1 s then 2 s apart; the last failure is caught."""
    retry = df.RetryOptions(
        first_retry_interval_in_milliseconds=1000,
        max_number_of_attempts=3,
        backoff_coefficient=2.0,
    )
    fail_times = context.get_input().get("fail_times", 1)
    call = {"key": context.instance_id, "fail_times": fail_times}
    try:
        attempts = yield context.call_activity_with_retry(FUNC_activity, retry, call)
    except df.TaskFailedError as error:
        return {"ok": False, "error": str(error)}
    return {"ok": True, "attempts": attempts}


@app.activity
def FUNC_activity(call: dict[str, Any]) -> int:
    """A stand-in for a flaky call: it fails the first ``fail_times`` tries."""
    key = call["key"]
    attempt = FUNC_attempts[key] = FUNC_attempts.get(key, 0) + 1
    if attempt <= call["fail_times"]:
        raise ConnectionError(f"attempt {attempt} failed")
    return attempt
