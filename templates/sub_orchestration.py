"""sub-orchestration: An orchestrator that runs a child orchestration per item.

POST /api/FUNC with a list of orders starts FUNC_orchestrator; each order gets
its own FUNC_item_orchestrator instance, which calls FUNC_activity:
  curl -X POST http://127.0.0.1:7071/api/FUNC -d '["A-1", "B-2"]'
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
    """Start FUNC_orchestrator with the list of orders in the JSON body."""
    orders = req.get_json() or []
    instance_id = await client.start_new(FUNC_orchestrator, None, orders)
    return client.create_check_status_response(req, instance_id)


@app.orchestrator
def FUNC_orchestrator(
    context: df.DurableOrchestrationContext,
) -> Generator[df.Task, Any, list[str]]:
    """One child orchestration per order, in parallel, with known ids."""
    children = [
        context.call_sub_orchestrator(
            FUNC_item_orchestrator,
            order,
            instance_id=f"{context.instance_id}:{index}",
        )
        for index, order in enumerate(context.get_input())
    ]
    results = yield context.task_all(children)
    return list(results)


@app.orchestrator
def FUNC_item_orchestrator(
    context: df.DurableOrchestrationContext,
) -> Generator[df.Task, Any, str]:
    """Handle one order: its own instance, history and status."""
    shipped = yield context.call_activity(FUNC_activity, context.get_input())
    return str(shipped)


@app.activity
def FUNC_activity(order: str) -> str:
    """Ship one order."""
    return f"shipped {order}"
