"""``durafn start --reload``: uvicorn's reloader serves the host from a child process and restarts
it when a ``.py`` file in the project folder changes.

uvicorn builds the child's app from an import string (:func:`create_app`), so the host's settings
travel to it in an environment variable.
"""

from __future__ import annotations

import base64
import logging
import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from durafn.discovery import load_app
from durafn.errors import DurafnError
from durafn.host.config import HostConfig
from durafn.host.protocol import HTTP_PROTOCOL
from durafn.host.server import configure_logging, host_app

CONFIG_ENV = "DURAFN_RELOAD_CONFIG"
FACTORY = "durafn.host.reloader:create_app"


def encode_config(config: HostConfig) -> str:
    """``config`` as an environment variable's value."""
    # pickle, not JSON: HostConfig is a tree of frozen dataclasses that grows new fields, and the
    # value only travels from this process to its own child
    return base64.b64encode(pickle.dumps(config)).decode("ascii")


def decode_config(value: str) -> HostConfig:
    """The HostConfig that :func:`encode_config` encoded."""
    config = pickle.loads(base64.b64decode(value))  # written by our parent
    if not isinstance(config, HostConfig):
        raise TypeError(f"{CONFIG_ENV} does not hold a HostConfig")
    return config


def serve_reloading(
    config: HostConfig, folder: Path | None = None, echo: Callable[[str], None] = print
) -> None:
    """Serve the app in a child process, restarted whenever a ``.py`` file under ``folder`` (the
    current folder by default) changes, until Ctrl-C or SIGTERM.
    """
    folder = (folder or Path.cwd()).resolve()
    os.environ[CONFIG_ENV] = encode_config(config)
    echo(f"Reloading when a .py file under {folder} changes.")
    uvicorn.run(
        FACTORY,
        factory=True,
        host=config.host,
        port=config.port,
        http=HTTP_PROTOCOL,
        reload=True,
        reload_dirs=[str(folder)],
        log_level=logging.WARNING,
        lifespan="on",
        timeout_graceful_shutdown=int(config.runtime.shutdown_grace_seconds),
    )


def broken_app(message: str) -> Starlette:
    """What the child serves while the function app fails to load: 503 and the reason."""

    async def refuse(request: Request) -> Response:
        return JSONResponse({"error": message}, status_code=503)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", refuse, methods=methods)])


def create_app() -> Starlette:
    """The host's ASGI app, built in the reloader's child from the settings in the environment."""
    configure_logging()
    config = decode_config(os.environ[CONFIG_ENV])
    try:
        app = load_app(config.app_target)
    except DurafnError as exc:
        # a half-edited file must not stop the reloader: report it and wait for the next save
        print(f"Error: {exc}\nFix it and save: the host reloads.", file=sys.stderr, flush=True)
        return broken_app(f"the function app failed to load: {exc}")
    return host_app(app, config, echo=lambda line: print(line, flush=True))
