"""fan-out-fan-in: Run an activity on many items in parallel, then aggregate.

POST /api/FUNC starts FUNC_orchestrator, which runs FUNC_activity for every
item at once and waits for all of them:
  curl -X POST http://127.0.0.1:7071/api/FUNC -d '{"count": 10}'
"""

from collections.abc import Generator
from typing import Any

import durafn as df

app = df.App(http_auth_level=df.AuthLevel.ANONYMOUS)


@app.route(route="FUNC", methods=["POST"])
@app.durable_client_input(client_name="client")
async def FUNC(
    req: df.HttpRequest, client: df.DurableOrchestrationClient
) -> df.HttpResponse:
    """Start FUNC_orchestrator with the JSON body as its input."""
    instance_id = await client.start_new(FUNC_orchestrator, None, req.get_json())
    return client.create_check_status_response(req, instance_id)


@app.orchestrator
def FUNC_orchestrator(
    context: df.DurableOrchestrationContext,
) -> Generator[df.Task, Any, dict[str, int]]:
    """Fan out one activity per item; task_all returns results in order."""
    count = (context.get_input() or {}).get("count", 10)
    tasks = [context.call_activity(FUNC_activity, i) for i in range(count)]
    results = yield context.task_all(tasks)
    return {"items": len(results), "total": sum(results)}


@app.activity
def FUNC_activity(item: int) -> int:
    """Process one item (here: square it)."""
    return item * item
