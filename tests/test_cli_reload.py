"""``durafn start --reload``: a real host that restarts when function_app.py changes."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from hostproc import HostProcess

APP = """import durafn as df

app = df.App(http_auth_level=df.AuthLevel.ANONYMOUS)


@app.route(route="one")
def one(req: df.HttpRequest) -> str:
    return "one"
"""

SECOND_ROUTE = """

@app.route(route="two")
def two(req: df.HttpRequest) -> str:
    return "two"
"""


def wait_for(
    url: str, status: int, timeout: float = 30.0, save: Callable[[], object] | None = None
) -> httpx.Response:
    """GET ``url`` until it answers ``status``; ``save`` writes the file now and again every
    two seconds: uvicorn's reloader takes its first look at the files' times only after it
    started, so a save made before that look goes unnoticed, as it would for a user.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    saved_at = -math.inf
    while time.monotonic() < deadline:
        if save is not None and time.monotonic() - saved_at >= 2:
            save()
            saved_at = time.monotonic()
        try:
            last = response = httpx.get(url, timeout=2)
            if response.status_code == status:
                return response
        except httpx.TransportError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered {status}; last: {last}")


def test_reload_picks_up_a_new_route_and_survives_a_broken_save(tmp_path: Path) -> None:
    app_file = tmp_path / "function_app.py"
    app_file.write_text(APP)
    host = HostProcess(tmp_path, f"sqlite:///{tmp_path / 'reload.db'}", "--reload")
    try:
        host.wait_ready()
        assert wait_for(f"{host.url}/api/one", 200).text == "one"
        assert httpx.get(f"{host.url}/api/two").status_code == 404

        two = wait_for(
            f"{host.url}/api/two", 200, save=lambda: app_file.write_text(APP + SECOND_ROUTE)
        )
        assert two.text == "two"

        # a half-edited file: the host answers 503 with the reason and waits for the next save
        half_edited = APP + "\n@app.route(\n"
        broken = wait_for(f"{host.url}/api/one", 503, save=lambda: app_file.write_text(half_edited))
        assert "function_app.py" in broken.json()["error"]
        assert (
            wait_for(f"{host.url}/api/one", 200, save=lambda: app_file.write_text(APP)).text
            == "one"
        )
    finally:
        code = host.stop()
    assert code == 0, host.output()
    assert "detected changes" in host.output()


def test_reload_refuses_a_broken_app_at_once(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(
        "import durafn as df\napp = df.App()\n\n@app.orchestrator\ndef flow(context):\n"
        "    return 1\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "durafn", "start", "--reload", "--port", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "orchestrator 'flow'" in result.stderr and "function_app.py:4" in result.stderr
    assert "Traceback" not in result.stderr
