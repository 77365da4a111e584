"""The ``durafn`` command line: start a host (more commands come with templates and instances)."""

from __future__ import annotations

import logging
import sys

import click

from durafn.discovery import load_app
from durafn.errors import DurafnError
from durafn.host.config import HostConfig
from durafn.runtime.config import RuntimeConfig


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="durafn")
def main() -> None:
    """durafn: durable functions in pure Python."""


@main.command()
@click.option("--host", default=None, help="Interface to listen on [default: 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [default: 7071; env DURAFN_PORT].")
@click.option(
    "--storage",
    default=None,
    help="Store URL [default: sqlite:///.durafn/durafn.db; env DURAFN_STORAGE].",
)
@click.option(
    "--app", "app_target", default=None, help="The app as module:attr [default: function_app]."
)
@click.option(
    "--workers-activity",
    type=click.IntRange(min=1),
    default=None,
    help="Threads for sync activities.",
)
def start(
    host: str | None,
    port: int | None,
    storage: str | None,
    app_target: str | None,
    workers_activity: int | None,
) -> None:
    r"""Run the function app in this folder: HTTP triggers, orchestrations, activities.

    \b
    Examples:
      durafn start
      durafn start --port 8080 --storage postgresql+psycopg://user@db/durafn
    """
    from durafn.host.server import serve

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        runtime = (
            RuntimeConfig()
            if workers_activity is None
            else RuntimeConfig(activity_threads=workers_activity)
        )
        config = HostConfig.from_env(
            host=host, port=port, storage=storage, app_target=app_target, runtime=runtime
        )
        app = load_app(config.app_target)
        serve(app, config, echo=click.echo)
    except (DurafnError, ValueError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
