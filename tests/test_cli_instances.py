"""``durafn instances`` against a live ``durafn start``: real HTTP to a real host process."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hostproc import HostProcess, free_port

from durafn.cli import main

APP = textwrap.dedent(
    """
    import durafn as df

    app = df.App(http_auth_level=df.AuthLevel.ANONYMOUS)

    @app.orchestrator
    def wait_for_go(context):
        context.set_custom_status("waiting")
        data = yield context.wait_for_external_event("go")
        shouted = yield context.call_activity(shout, data)
        return shouted

    @app.activity
    def shout(data):
        return {"heard": data}
    """
)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    folder = tmp_path_factory.mktemp("instances")
    (folder / "function_app.py").write_text(APP)
    process = HostProcess(folder, "sqlite:///.durafn/durafn.db")
    try:
        process.wait_ready()
        yield process
    finally:
        assert process.stop() == 0, process.output()


def run(host: HostProcess, *args: str) -> Result:
    return CliRunner().invoke(
        main, ["instances", *args], env={"DURAFN_URL": host.url}, catch_exceptions=False
    )


def status_of(host: HostProcess, instance_id: str) -> dict[str, Any]:
    result = run(host, "show", instance_id, "--json")
    assert result.exit_code == 0, result.output
    body: dict[str, Any] = json.loads(result.output)
    return body


def wait_status(host: HostProcess, instance_id: str, wanted: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status = status_of(host, instance_id)
        if status["runtimeStatus"] == wanted:
            return status
        time.sleep(0.05)
    raise AssertionError(f"{instance_id} never became {wanted}: {status}")


def test_start_list_show_suspend_resume_raise_purge(host: HostProcess) -> None:
    started = run(host, "start", "wait_for_go", "--id", "job-1", "--input", '{"size": 3}')
    assert started.exit_code == 0, started.output
    assert "Started wait_for_go as instance job-1" in started.output
    assert f"{host.url}/runtime/webhooks/durabletask/instances/job-1" in started.output
    wait_status(host, "job-1", "Running")

    listing = run(host, "list")
    assert listing.exit_code == 0
    header, *rows = listing.output.splitlines()
    assert header.split() == ["INSTANCE", "ID", "NAME", "STATUS", "CREATED", "LAST", "UPDATED"]
    assert any(row.split()[:3] == ["job-1", "wait_for_go", "Running"] for row in rows)
    as_json = json.loads(run(host, "list", "--status", "running", "--json").output)
    assert "job-1" in [s["instanceId"] for s in as_json]
    assert json.loads(run(host, "list", "--status", "Failed", "--json").output) == []
    assert run(host, "list", "--prefix", "nobody-").output.strip() == "No instances."

    shown = run(host, "show", "job-1", "--history")
    assert shown.exit_code == 0
    assert "Status:        Running" in shown.output
    assert 'Input:         {"size": 3}' in shown.output
    assert 'Custom status: "waiting"' in shown.output
    assert "ExecutionStarted" in shown.output and "History (" in shown.output

    assert run(host, "suspend", "job-1", "--reason", "maintenance").exit_code == 0
    wait_status(host, "job-1", "Suspended")
    resumed = run(host, "resume", "job-1")
    assert resumed.exit_code == 0 and "Resume requested for instance job-1" in resumed.output
    wait_status(host, "job-1", "Running")

    raised = run(host, "raise", "job-1", "go", '{"n": 1}')
    assert raised.exit_code == 0 and "Raised event go on instance job-1" in raised.output
    done = wait_status(host, "job-1", "Completed")
    assert done["output"] == {"heard": {"n": 1}}

    # the host refuses: its message and a non-zero exit
    refused = run(host, "terminate", "job-1")
    assert refused.exit_code == 1
    assert "410" in refused.output and "Cannot terminate instance 'job-1'" in refused.output
    assert "Traceback" not in refused.output

    purged = run(host, "purge", "job-1", "--json")
    assert purged.exit_code == 0 and json.loads(purged.output) == {"instancesDeleted": 1}
    gone = run(host, "show", "job-1")
    assert gone.exit_code == 1
    assert "404" in gone.output and "No instance with ID 'job-1' was found." in gone.output


def test_terminate_with_reason_and_purge_of_an_active_instance(host: HostProcess) -> None:
    started = json.loads(run(host, "start", "wait_for_go", "--json").output)
    instance_id = started["id"]
    assert f"/instances/{instance_id}" in started["statusQueryGetUri"]
    wait_status(host, instance_id, "Running")
    busy = run(host, "purge", instance_id)
    assert busy.exit_code == 1 and "409" in busy.output
    terminated = run(host, "terminate", instance_id, "--reason", "not needed", "--json")
    assert terminated.exit_code == 0
    assert json.loads(terminated.output)["action"] == "terminate"
    assert wait_status(host, instance_id, "Terminated")["output"] == "not needed"
    late = run(host, "raise", instance_id, "go")
    assert late.exit_code == 1 and "410" in late.output


def test_unknown_names_and_bad_json_are_refused(host: HostProcess) -> None:
    unknown = run(host, "start", "no_such_orchestrator")
    assert unknown.exit_code == 1
    assert "404" in unknown.output and "no_such_orchestrator" in unknown.output
    bad = run(host, "start", "wait_for_go", "--input", "{not json")
    assert bad.exit_code == 2 and "is not JSON" in bad.output
    bad_data = run(host, "raise", "x", "go", "plain words")
    assert bad_data.exit_code == 2 and "a string needs quotes" in bad_data.output


def test_an_unreachable_host_says_how_to_start_one() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(main, ["instances", "list", "--url", url])
    assert result.exit_code == 1
    assert f"no durafn host is reachable at {url}" in result.output
    assert "durafn start" in result.output and "Traceback" not in result.output
