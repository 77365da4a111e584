"""``durafn start --reload``: a real host that restarts when function_app.py changes."""

from __future__ import annotations

import subprocess
import sys
import time
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


def wait_for(url: str, status: int, timeout: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
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

        app_file.write_text(APP + SECOND_ROUTE)
        assert wait_for(f"{host.url}/api/two", 200).text == "two"

        # a half-edited file: the host answers 503 with the reason and waits for the next save
        app_file.write_text(APP + "\n@app.route(\n")
        broken = wait_for(f"{host.url}/api/one", 503)
        assert "function_app.py" in broken.json()["error"]
        app_file.write_text(APP)
        assert wait_for(f"{host.url}/api/one", 200).text == "one"
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
