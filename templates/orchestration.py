"""orchestration: An HTTP starter, an orchestrator and an activity (chaining).

POST /api/FUNC starts FUNC_orchestrator, which calls FUNC_activity for each
city in turn; then GET the statusQueryGetUri of the answer:
  curl -X POST http://127.0.0.1:7071/api/FUNC -d '["Oslo", "Lima"]'
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
) -> Generator[df.Task, Any, list[str]]:
    """Greet each city in turn; a replay returns recorded results."""
    cities = context.get_input() or ["Tokyo", "Seattle", "London"]
    greetings = []
    for city in cities:
        greeting = yield context.call_activity(FUNC_activity, city)
        greetings.append(greeting)
    return greetings


@app.activity
def FUNC_activity(city: str) -> str:
    """The work itself: any Python, run at least once per call."""
    return f"Hello {city}!"
