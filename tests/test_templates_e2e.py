"""Every template added with ``durafn new`` to one fresh project, served by a real ``durafn start``
and exercised over HTTP, as a new user would."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from hostproc import HostProcess
from test_scaffold import ruff

from durafn.cli import main

NAMES = {
    "http-trigger": "greet",
    "timer-trigger": "tick",
    "orchestration": "chain",
    "singleton": "nightly",
    "fan-out-fan-in": "fan",
    "human-interaction": "approval",
    "monitor": "watch",
    "eternal": "forever",
    "sub-orchestration": "orders",
    "retry": "flaky",
}


def cli(folder: Path, *args: str) -> str:
    previous = Path.cwd()
    os.chdir(folder)
    try:
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    finally:
        os.chdir(previous)
    assert result.exit_code == 0, result.output
    return result.output


def wait_done(url: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(url)
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
        assert response.status_code == 202, response.text
        time.sleep(0.1)
    raise AssertionError(f"{url} did not finish in {timeout} s")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("templates")
    cli(root, "init", "app")
    folder = root / "app"
    for template_id, name in NAMES.items():
        cli(folder, "new", "--template", template_id, "--name", name)
    app_file = folder / "function_app.py"
    # a user editing the timer template's schedule: every second, to see it tick in this test
    source = app_file.read_text()
    assert source.count('schedule="0 */5 * * * *"') == 1
    app_file.write_text(source.replace('schedule="0 */5 * * * *"', 'schedule="* * * * * *"'))
    return folder


def test_the_combined_project_is_lint_clean(project: Path) -> None:
    result = ruff(project)
    assert result.returncode == 0, result.stdout


def test_every_template_works_when_served_together(project: Path) -> None:
    host = HostProcess(project, "sqlite:///.durafn/durafn.db")
    try:
        host.wait_ready()
        exercise(host)
    finally:
        code = host.stop()
    assert code == 0, host.output()


def exercise(host: HostProcess) -> None:
    api = f"{host.url}/api"
    banner = host.output()
    for name in NAMES.values():
        assert f"        {name}: " in banner, name
    assert "tick: timerTrigger (* * * * * *)" in banner

    # http-trigger
    assert httpx.get(f"{api}/greet", params={"name": "Ada"}).text == "Hello, Ada!"
    assert httpx.post(f"{api}/greet", json={"name": "Bo"}).text == "Hello, Bo!"
    assert httpx.get(f"{api}/greet").status_code == 400

    # start every durable template at once, then collect the outcomes
    started = {
        "hello": httpx.post(f"{api}/hello"),
        "chain": httpx.post(f"{api}/chain", json=["Oslo", "Lima"]),
        "nightly": httpx.post(f"{api}/nightly/job-1", json={"delay_seconds": 1}),
        "fan": httpx.post(f"{api}/fan", json={"count": 12}),
        "approved": httpx.post(f"{api}/approval", json={"timeout_seconds": 30}),
        "ignored": httpx.post(f"{api}/approval", json={"timeout_seconds": 1}),
        "watch": httpx.post(f"{api}/watch", json={"job": "b42", "interval_seconds": 0.3}),
        "forever": httpx.post(f"{api}/forever/loop", json={"interval_seconds": 0.1, "rounds": 3}),
        "orders": httpx.post(f"{api}/orders", json=["A-1", "B-2", "C-3"]),
        "flaky": httpx.post(f"{api}/flaky", json={"fail_times": 1}),
        "broken": httpx.post(f"{api}/flaky", json={"fail_times": 5}),
    }
    for key, response in started.items():
        assert response.status_code == 202, (key, response.text)
    urls = {key: r.json()["statusQueryGetUri"] for key, r in started.items()}

    # singleton: a second start of a running id is refused
    again = httpx.post(f"{api}/nightly/job-1", json={"delay_seconds": 1})
    assert again.status_code == 409 and "already exists" in again.text

    # human interaction: approve one request, let the other time out
    approved_id = started["approved"].json()["id"]
    approve = httpx.post(f"{api}/approval/{approved_id}/approve", json={"by": "Ada"})
    assert approve.status_code == 202

    outputs = {key: wait_done(url)["output"] for key, url in urls.items()}
    assert outputs["hello"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert outputs["chain"] == ["Hello Oslo!", "Hello Lima!"]
    assert outputs["nightly"] == "job-1 done"
    assert outputs["fan"] == {"items": 12, "total": sum(i * i for i in range(12))}
    assert outputs["approved"] == "approved by Ada"
    assert outputs["ignored"] == "escalated: no approval within 1 s"
    assert outputs["watch"] == {"job": "b42", "done": True, "polls": 3}
    assert outputs["forever"] == {"rounds": 3}
    assert outputs["orders"] == ["shipped A-1", "shipped B-2", "shipped C-3"]
    assert outputs["flaky"] == {"ok": True, "attempts": 2}
    assert outputs["broken"]["ok"] is False
    assert "ConnectionError" in outputs["broken"]["error"]

    # the singleton id is free again once its instance finished
    assert httpx.post(f"{api}/nightly/job-1", json={"delay_seconds": 0}).status_code == 202
    # each order ran as its own sub-orchestration instance
    orders_id = started["orders"].json()["id"]
    child = httpx.get(f"{host.url}/runtime/webhooks/durabletask/instances/{orders_id}:1")
    assert child.json()["name"] == "orders_item_orchestrator"
    assert child.json()["output"] == "shipped B-2"

    # timer-trigger: a per-second schedule has ticked a few times by now
    deadline = time.monotonic() + 10
    while host.output().count("tick ran") < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert host.output().count("tick ran") >= 2, host.output()
