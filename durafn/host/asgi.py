"""build_asgi_app: the Starlette application of a function app, its lifespan running the Runtime."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from durafn.app import App
from durafn.client import DurableOrchestrationClient
from durafn.functions import FunctionSpec
from durafn.host.config import HostConfig
from durafn.host.errors import EXCEPTION_HANDLERS
from durafn.host.triggers import trigger_routes
from durafn.host.webhooks import management_routes
from durafn.runtime import Runtime


class StripTrailingSlash:
    """Serve ``/path/`` as ``/path``, as the Azure host does, instead of redirecting."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Rewrite the path, then pass the request on."""
        if scope["type"] == "http":
            path: str = scope["path"]
            if len(path) > 1 and path.endswith("/"):
                scope = dict(scope, path=path.rstrip("/") or "/")
        await self.app(scope, receive, send)


async def allow_trigger(request: Request, spec: FunctionSpec) -> None:
    """Keys are not enforced on this host: every trigger is open."""


async def allow_management(request: Request) -> None:
    """Keys are not enforced on this host: the management API is open."""


def build_asgi_app(
    app: App,
    config: HostConfig | None = None,
    *,
    on_started: Callable[[Runtime], None] | None = None,
) -> Starlette:
    """A Starlette app serving ``app``'s HTTP triggers under /api and the management API; its
    lifespan starts and stops a Runtime on ``config.storage``.
    """
    config = config or HostConfig()
    runtime = Runtime(app, config.storage, config=config.runtime)

    def client() -> DurableOrchestrationClient:
        return runtime.client

    routes = trigger_routes(app.functions, client, allow_trigger, config.max_body_bytes)
    routes += management_routes(client, allow_management, config.max_body_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with runtime:
            if on_started is not None:
                on_started(runtime)
            yield {"durafn_runtime": runtime}

    starlette = Starlette(routes=routes, lifespan=lifespan, exception_handlers=EXCEPTION_HANDLERS)
    starlette.add_middleware(StripTrailingSlash)
    starlette.state.runtime = runtime
    return starlette
