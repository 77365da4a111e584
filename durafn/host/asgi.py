"""build_asgi_app: the Starlette application of a function app, its lifespan running the Runtime."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from durafn.app import App
from durafn.client import DurableOrchestrationClient
from durafn.host.auth import HostKeys, KeyGuard, load_keys
from durafn.host.config import HostConfig
from durafn.host.errors import EXCEPTION_HANDLERS
from durafn.host.openapi import openapi_route
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


def build_asgi_app(
    app: App,
    config: HostConfig | None = None,
    *,
    on_started: Callable[[Runtime], None] | None = None,
    services: Sequence[Callable[[Runtime], AbstractAsyncContextManager[object]]] = (),
    keys: HostKeys | None = None,
) -> Starlette:
    """A Starlette app serving ``app``'s HTTP triggers under /api and the management API; its
    lifespan starts and stops a Runtime on ``config.storage``, and ``services`` (such as the cron
    scheduler) after the Runtime starts and before it stops.

    When ``config.keys_enforced``, requests need ``keys`` (default: ``load_keys`` in the current
    folder) as SPEC §5 says; otherwise every request is let in and ``keys`` is ignored.
    """
    config = config or HostConfig()
    runtime = Runtime(app, config.storage, config=config.runtime)

    def client() -> DurableOrchestrationClient:
        return runtime.client

    if config.keys_enforced and keys is None:
        keys = load_keys(Path.cwd())
    guard = KeyGuard(keys if config.keys_enforced else None, app.http_auth_level)
    routes = trigger_routes(app.functions, client, guard.trigger, config.max_body_bytes)
    routes += management_routes(client, guard.management, config.max_body_bytes)
    routes.append(openapi_route(guard.management))

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with runtime, contextlib.AsyncExitStack() as stack:
            if guard.keys is not None:
                # check-status URLs carry the system key: it opens only the management API
                runtime.client.management_key = guard.keys.system
            for service in services:
                await stack.enter_async_context(service(runtime))
            if on_started is not None:
                on_started(runtime)
            yield {"durafn_runtime": runtime}

    starlette = Starlette(routes=routes, lifespan=lifespan, exception_handlers=EXCEPTION_HANDLERS)
    starlette.add_middleware(StripTrailingSlash)
    starlette.state.runtime = runtime
    return starlette
