"""The function app of the key and hostile-input tests: in-process (``app``) and, copied into a
project folder as function_app.py, under a real ``durafn start``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import durafn as df

SOURCE = Path(__file__)

app = df.App(http_auth_level=df.AuthLevel.FUNCTION)


@app.route(route="orchestrators/{functionName}/{instanceId}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: df.HttpRequest, client: df.DurableOrchestrationClient) -> Any:
    """The singleton starter of SPEC §1; FUNCTION level, the app's default."""
    instance_id = req.route_params["instanceId"]
    existing = await client.get_status(instance_id)
    if existing is None or not existing.runtime_status.is_active:
        await client.start_new(req.route_params["functionName"], instance_id, req.get_json())
        return client.create_check_status_response(req, instance_id)
    return df.HttpResponse(f"An instance with ID '{instance_id}' already exists.", status_code=409)


@app.route(route="public", auth_level=df.AuthLevel.ANONYMOUS)
def public(req: df.HttpRequest) -> str:
    return "public"


@app.route(route="admin", auth_level=df.AuthLevel.ADMIN)
def admin(req: df.HttpRequest) -> str:
    return "admin"


@app.route(route="echo/{count:int?}", auth_level="anonymous")
def echo(req: df.HttpRequest) -> dict[str, Any]:
    return {"route": req.route_params, "json": req.get_json()}


@app.route(route="lone", methods=["GET"], auth_level=df.AuthLevel.ANONYMOUS)
def lone(req: df.HttpRequest) -> dict[str, str]:
    # a lone surrogate, which UTF-8 cannot encode: the host must still answer
    return {"text": "\ud800"}


@app.orchestrator
def hello(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    greeting = yield context.call_activity(say_hello, context.get_input() or "world")
    return greeting


@app.orchestrator
def waiter(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    value = yield context.wait_for_external_event("go")
    return value


@app.activity
def say_hello(name: Any) -> str:
    return f"Hello {name}!"


@app.orchestrator
def failing(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    yield context.call_activity(explode, context.get_input())


@app.activity
def explode(value: Any) -> None:
    raise RuntimeError(f"exploded on {value!r}")
