"""``durafn start``: uvicorn serving the app, the banner, and a clean stop on Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable, Iterator

import uvicorn

from durafn.app import App
from durafn.functions import FunctionKind
from durafn.host.asgi import build_asgi_app
from durafn.host.config import HostConfig
from durafn.host.triggers import starlette_paths
from durafn.runtime import Runtime
from durafn.store import open_store

Printer = Callable[[str], None]


def banner_lines(app: App, config: HostConfig) -> list[str]:
    """What ``durafn start`` prints: each function with its kind, and HTTP triggers' URLs."""
    lines = ["", "Functions:", ""]
    for spec in app.functions:
        if spec.kind is FunctionKind.HTTP:
            methods = ",".join(spec.methods)
            path = starlette_paths(spec.display_route)[0]
            lines.append(f"        {spec.name}: [{methods}] {config.base_url}{path}")
        else:
            kind = spec.kind.value if spec.kind else "function"
            extra = f" ({spec.schedule})" if spec.schedule else ""
            lines.append(f"        {spec.name}: {kind}Trigger{extra}")
    lines += [
        "",
        f"Management API: {config.base_url}/runtime/webhooks/durabletask/instances",
        f"Storage: {config.storage}",
        "Keys: not enforced (this host listens on loopback only)"
        if not config.keys_enforced
        else "Keys: enforced",
        "",
    ]
    return lines


class _Server(uvicorn.Server):
    """uvicorn's server, except that a stop by Ctrl-C or SIGTERM ends the process with status 0:
    uvicorn re-raises the signal after its graceful shutdown, which would kill us by it.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Route SIGINT and SIGTERM to uvicorn's graceful exit while serving."""
        handled = (signal.SIGINT, signal.SIGTERM)
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


def preflight(config: HostConfig) -> None:
    """Open the store and take the host lock once before serving, so a bad URL, a newer schema or a
    second host on one SQLite file is a one-line error instead of a failed server start.
    """
    store = open_store(config.storage)
    try:
        store.attach_host("preflight")
    finally:
        store.close()


def serve(app: App, config: HostConfig, echo: Printer = print) -> None:
    """Run the host until Ctrl-C or SIGTERM; in-flight work finishes or is left to resume."""

    def started(runtime: Runtime) -> None:
        for line in banner_lines(app, config):
            echo(line)
        echo(
            f"Host started on {config.base_url} (worker {runtime.worker_id}). Press Ctrl+C to stop."
        )

    preflight(config)
    asgi = build_asgi_app(app, config, on_started=started)
    uv_config = uvicorn.Config(
        asgi,
        host=config.host,
        port=config.port,
        log_level=logging.WARNING,
        lifespan="on",
        timeout_graceful_shutdown=int(config.runtime.shutdown_grace_seconds),
    )
    _Server(uv_config).run()
