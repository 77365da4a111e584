"""``durafn start``: uvicorn serving the app, the banner, and a clean stop on Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from durafn.app import App
from durafn.cron import CronScheduler
from durafn.functions import FunctionKind
from durafn.host.asgi import build_asgi_app
from durafn.host.auth import HostKeys, load_keys
from durafn.host.config import HostConfig
from durafn.host.protocol import HTTP_PROTOCOL
from durafn.host.triggers import starlette_paths
from durafn.runtime import Runtime
from durafn.store import open_store

Printer = Callable[[str], None]


def banner_lines(app: App, config: HostConfig, keys: HostKeys | None = None) -> list[str]:
    """What ``durafn start`` prints: each function with its kind, and HTTP triggers' URLs."""
    lines = ["", "Functions:", ""]
    for spec in app.functions:
        if spec.kind is FunctionKind.HTTP:
            methods = ",".join(spec.methods)
            path = starlette_paths(spec.display_route)[0]
            lines.append(f"        {spec.name}: [{methods}] {config.base_url}{path}")
        else:
            kind = spec.kind.value if spec.kind else "function"
            if spec.kind is FunctionKind.SCHEDULE:
                kind = "timer"  # Azure's name for a schedule function's trigger
            extra = f" ({spec.schedule})" if spec.schedule else ""
            lines.append(f"        {spec.name}: {kind}Trigger{extra}")
    lines += [
        "",
        f"Management API: {config.base_url}/runtime/webhooks/durabletask/instances",
        f"Storage: {config.storage}",
        *keys_lines(config, keys),
        "",
    ]
    return lines


def keys_lines(config: HostConfig, keys: HostKeys | None) -> list[str]:
    """The banner's word on keys: whether they are enforced, why, and where they come from."""
    if not config.keys_enforced:
        return ["Keys: not enforced (this host listens on loopback only)"]
    why = "--require-keys" if config.require_keys else f"this host listens on {config.host}"
    lines = [f"Keys: enforced ({why})"]
    if keys is not None:
        lines += [
            f"      from {keys.describe_sources()}; `durafn keys` shows them",
            "      send one as the x-functions-key header or the code query parameter",
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


def configure_logging() -> None:
    """Log durafn's and the user's INFO messages to stderr, as ``durafn start`` shows them."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def host_app(app: App, config: HostConfig, echo: Printer = print) -> Starlette:
    """The ASGI app of ``durafn start``: the app's triggers, the management API, the Runtime and
    the cron scheduler, printing the banner once they run.
    """
    keys = load_keys(Path.cwd()) if config.keys_enforced else None

    def started(runtime: Runtime) -> None:
        for line in banner_lines(app, config, keys):
            echo(line)
        echo(
            f"Host started on {config.base_url} (worker {runtime.worker_id}). Press Ctrl+C to stop."
        )

    return build_asgi_app(app, config, on_started=started, services=[CronScheduler], keys=keys)


def serve(app: App, config: HostConfig, echo: Printer = print) -> None:
    """Run the host until Ctrl-C or SIGTERM; in-flight work finishes or is left to resume.

    With ``config.reload`` the app is served by a child process restarted on file changes.
    """
    preflight(config)
    if config.reload:
        from durafn.host.reloader import serve_reloading

        serve_reloading(config, echo=echo)
        return
    asgi = host_app(app, config, echo)
    uv_config = uvicorn.Config(
        asgi,
        host=config.host,
        port=config.port,
        http=HTTP_PROTOCOL,
        log_level=logging.WARNING,
        lifespan="on",
        timeout_graceful_shutdown=int(config.runtime.shutdown_grace_seconds),
    )
    _Server(uv_config).run()
