"""The ``durafn`` command line: start, init, new, templates, instances, keys."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from durafn.discovery import load_app
from durafn.errors import DurafnError, HostRequestError
from durafn.host.config import HostConfig
from durafn.models import OrchestrationRuntimeStatus
from durafn.remote import DEFAULT_URL, ManagementClient, format_instances, format_status


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
@click.option(
    "--lease-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="How long a dead host's claimed work waits before others take it over "
    "[default: 30; env DURAFN_LEASE_SECONDS].",
)
@click.option(
    "--require-keys",
    is_flag=True,
    default=False,
    help="Check keys on loopback too (always checked on other interfaces; see `durafn keys`).",
)
@click.option(
    "--reload", is_flag=True, default=False, help="Restart when a .py file in this folder changes."
)
def start(
    host: str | None,
    port: int | None,
    storage: str | None,
    app_target: str | None,
    workers_activity: int | None,
    lease_seconds: float | None,
    require_keys: bool,
    reload: bool,
) -> None:
    """Run the function app in this folder: HTTP triggers, orchestrations, activities, cron.

    \b
    Examples:
      durafn start
      durafn start --reload
      durafn start --port 8080 --storage postgresql+psycopg://user@db/durafn
    """
    from durafn.host.server import serve

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = HostConfig.from_env(
            host=host,
            port=port,
            storage=storage,
            app_target=app_target,
            activity_threads=workers_activity,
            lease_seconds=lease_seconds,
            require_keys=require_keys or None,
            reload=reload or None,
        )
        app = load_app(config.app_target)
        serve(app, config, echo=click.echo)
    except (DurafnError, ValueError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the keys as one JSON object.")
def keys(as_json: bool) -> None:
    r"""Show the function, master and system keys of the project in this folder.

    Each comes from DURAFN_FUNCTION_KEY, DURAFN_MASTER_KEY or DURAFN_SYSTEM_KEY, else from
    .durafn/keys.json, created with random keys (mode 0600) if missing. A host that enforces keys
    (off loopback, or with --require-keys) takes one as the x-functions-key header or the code
    query parameter.
    """
    import json
    from pathlib import Path

    from durafn.host.auth import KEY_NAMES, load_keys

    try:
        host_keys = load_keys(Path.cwd())
    except DurafnError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps({name: host_keys.value(name) for name in KEY_NAMES}))
        return
    for name in KEY_NAMES:
        click.echo(f"{name:<8}  {host_keys.value(name)}  (from {host_keys.sources[name]})")


@main.command()
@click.argument("directory", required=False, default=".", type=click.Path(path_type=Path))
def init(directory: Path) -> None:
    """Create a runnable project in DIRECTORY (default: this folder).

    It holds function_app.py (an HTTP starter, an orchestrator and an activity), its test,
    requirements.txt, README.md, pytest.ini and a .gitignore for .durafn/. Existing files are
    kept; a folder that already has a function_app.py is refused.

    \b
    Examples:
      durafn init my-app && cd my-app && pytest && durafn start
      durafn init
    """
    from durafn.scaffold import init_project

    try:
        result = init_project(directory)
    except DurafnError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"Created a durafn project in {result.folder.resolve()}:")
    for name in result.created:
        click.echo(f"  {name}")
    for name in result.kept:
        click.echo(f"  {name} (kept: it already existed)")
    where = "" if directory == Path(".") else f"cd {directory} && "
    click.echo(f"Next: {where}python -m pip install -r requirements.txt && pytest && durafn start")


@main.command()
def templates() -> None:
    """List the function templates for 'durafn new': one per line, its id, then what it adds.

    \b
    Example:
      durafn templates
    """
    from durafn.scaffold import list_templates

    try:
        found = list_templates()
    except DurafnError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    width = max(len(template.id) for template in found)
    for template in found:
        click.echo(f"{template.id:<{width}}  {template.description}")


@main.command()
@click.option("--template", "-t", "template_id", required=True, help="A template id.")
@click.option(
    "--name", "-n", required=True, help="The function's name; other names derive from it."
)
@click.option(
    "--file",
    "app_file",
    default="function_app.py",
    show_default=True,
    type=click.Path(path_type=Path),
    help="The module to add the function(s) to.",
)
def new(template_id: str, name: str, app_file: Path) -> None:
    """Add a function from a template to function_app.py.

    The functions and routes it adds are named after NAME (NAME, NAME_orchestrator,
    NAME_activity, route NAME), so templates never collide. A name that exists is refused and the
    file is left unchanged. 'durafn templates' lists the ids.

    \b
    Examples:
      durafn new --template http-trigger --name greet
      durafn new --template fan-out-fan-in --name resize_images
      durafn new -t timer-trigger -n nightly_cleanup
    """
    from durafn.scaffold import add_template

    try:
        rendered = add_template(app_file, template_id, name)
    except DurafnError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    added = ", ".join(rendered.defines.names)
    click.echo(f"Added template '{template_id}' to {app_file}: {added}.")
    if rendered.notes:
        click.echo(rendered.notes)


# -- durafn instances: calls to a running host's management API (durafn/remote.py) -----------

STATUSES = [status.value for status in OrchestrationRuntimeStatus]
F = TypeVar("F", bound=Callable[..., Any])


def _host_options(fn: F) -> F:
    """--url, --key and --json, which every instances command takes."""
    fn = click.option("--json", "as_json", is_flag=True, help="Print the host's JSON answer.")(fn)
    fn = click.option(
        "--key", envvar="DURAFN_MASTER_KEY", help="The master key [env DURAFN_MASTER_KEY]."
    )(fn)
    return click.option(
        "--url",
        envvar="DURAFN_URL",
        default=DEFAULT_URL,
        help=f"The host [{DEFAULT_URL}; env DURAFN_URL].",
    )(fn)


def _json_text(value: str | None, what: str) -> str | None:
    """``value`` checked to be JSON here, where a typo is easiest to point at."""
    if value is not None:
        try:
            json.loads(value)
        except ValueError as exc:
            raise click.BadParameter(
                f"{value!r} is not JSON ({exc}); a string needs quotes, e.g. '\"text\"'",
                param_hint=what,
            ) from None
    return value


def _answer(as_json: bool, value: Any, text: str) -> None:
    click.echo(json.dumps(value, indent=2, default=str) if as_json else text)


@contextlib.contextmanager
def _host_errors() -> Iterator[None]:
    """A refused or unreachable call ends the command with its message and exit status 1."""
    try:
        yield
    except HostRequestError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


@main.group()
def instances() -> None:
    """Manage the orchestration instances of a running host.

    \b
    Examples:
      durafn instances list --status Running
      durafn instances show 4f1c2a --history
      durafn instances start hello_orchestrator --input '["Oslo"]'
      DURAFN_URL=http://10.0.0.5:7071 durafn instances terminate 4f1c2a --reason obsolete
    """


@instances.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUSES, case_sensitive=False),
    help="Only instances with this status (repeatable).",
)
@click.option("--prefix", help="Only instance ids that start with this.")
@click.option("--top", type=click.IntRange(min=1), help="At most this many instances.")
@_host_options
def instances_list(
    statuses: tuple[str, ...],
    prefix: str | None,
    top: int | None,
    url: str,
    key: str | None,
    as_json: bool,
) -> None:
    """List instances, oldest first: id, orchestrator, status and times.

    \b
    Examples:
      durafn instances list
      durafn instances list --status Failed --status Terminated
      durafn instances list --prefix nightly- --json
    """
    with _host_errors():  # click hands over the statuses spelled as in STATUSES
        found = ManagementClient(url, key).list_instances(list(statuses), prefix, top)
    _answer(as_json, found, format_instances(found))


@instances.command("show")
@click.argument("instance_id")
@click.option("--history", is_flag=True, help="Also show the history events.")
@_host_options
def instances_show(
    instance_id: str, history: bool, url: str, key: str | None, as_json: bool
) -> None:
    """Show one instance: status, input, output, custom status and, with --history, its events.

    \b
    Examples:
      durafn instances show 4f1c2a
      durafn instances show nightly --history --json
    """
    with _host_errors():
        status = ManagementClient(url, key).get_status(instance_id, history)
    _answer(as_json, status, format_status(status))


@instances.command("start")
@click.argument("name")
@click.option("--id", "instance_id", help="The instance id [default: a random one].")
@click.option("--input", "input_json", help="The orchestrator's input, as JSON.")
@_host_options
def instances_start(
    name: str,
    instance_id: str | None,
    input_json: str | None,
    url: str,
    key: str | None,
    as_json: bool,
) -> None:
    """Start orchestrator NAME.

    \b
    Examples:
      durafn instances start hello_orchestrator
      durafn instances start hello_orchestrator --id greet-1 --input '["Oslo", "Lima"]'
    """
    data = _json_text(input_json, "--input")
    with _host_errors():
        payload = ManagementClient(url, key).start(name, instance_id, data)
    status_url = payload.get("statusQueryGetUri")
    _answer(
        as_json, payload, f"Started {name} as instance {payload.get('id')}\nStatus: {status_url}"
    )


@instances.command("raise")
@click.argument("instance_id")
@click.argument("event")
@click.argument("data", required=False)
@_host_options
def instances_raise(
    instance_id: str, event: str, data: str | None, url: str, key: str | None, as_json: bool
) -> None:
    """Send EVENT, with optional JSON DATA, to an instance.

    \b
    Examples:
      durafn instances raise 4f1c2a Approval '{"by": "Ada"}'
      durafn instances raise 4f1c2a Cancel
    """
    payload = _json_text(data, "DATA")
    with _host_errors():
        ManagementClient(url, key).raise_event(instance_id, event, payload)
    accepted = {"instanceId": instance_id, "event": event, "accepted": True}
    _answer(as_json, accepted, f"Raised event {event} on instance {instance_id}.")


_ACTIONS = {
    "terminate": ("Terminate a Pending, Running or Suspended instance.", "no longer needed"),
    "suspend": ("Suspend a running instance until it is resumed.", "maintenance"),
    "resume": ("Resume a suspended instance.", "maintenance over"),
}


def _action_command(action: str) -> None:
    """``durafn instances ACTION ID [--reason]``: one POST to the instance's ACTION endpoint."""
    summary, reason_example = _ACTIONS[action]

    def command(
        instance_id: str, reason: str | None, url: str, key: str | None, as_json: bool
    ) -> None:
        with _host_errors():
            ManagementClient(url, key).act(instance_id, action, reason)
        accepted = {"instanceId": instance_id, "action": action, "accepted": True}
        _answer(as_json, accepted, f"{action.capitalize()} requested for instance {instance_id}.")

    command.__doc__ = (
        f"{summary}\n\n\b\nExamples:\n  durafn instances {action} 4f1c2a\n"
        f'  durafn instances {action} 4f1c2a --reason "{reason_example}"\n'
    )
    with_options = _host_options(
        click.option("--reason", help="Why; kept in the history.")(command)
    )
    instances.command(action)(click.argument("instance_id")(with_options))


for _action in _ACTIONS:
    _action_command(_action)


@instances.command("purge")
@click.argument("instance_id")
@_host_options
def instances_purge(instance_id: str, url: str, key: str | None, as_json: bool) -> None:
    """Delete a finished instance and its history.

    \b
    Examples:
      durafn instances purge 4f1c2a
    """
    with _host_errors():
        deleted = ManagementClient(url, key).purge(instance_id)
    _answer(as_json, {"instancesDeleted": deleted}, f"Purged instance {instance_id}.")
