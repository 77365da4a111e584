"""`durafn start` as a user runs it: a real subprocess serving a sample over real HTTP."""

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from hostproc import HostProcess

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def poll(url: str, timeout: float = 15.0) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(url)
        if response.status_code == 200:
            return response.json()  # type: ignore[no-any-return]
        assert response.status_code == 202, response.text
        time.sleep(0.05)
    raise AssertionError(f"{url} never finished")


def test_start_serves_the_chaining_sample_and_stops_cleanly(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(SAMPLES / "function_chaining", project)
    host = HostProcess(project, "sqlite:///.durafn/durafn.db")
    try:
        host.wait_ready()
        banner = host.output()
        assert "http_start: [POST] " in banner
        assert f"{host.url}/api/orchestrators/{{functionName}}/{{instanceId}}" in banner
        assert "hello_sequence: orchestratorTrigger" in banner
        assert "say_hello: activityTrigger" in banner
        response = httpx.post(f"{host.url}/api/orchestrators/hello_sequence")
        assert response.status_code == 202
        status_url = response.json()["statusQueryGetUri"]
        assert status_url.startswith(host.url)
        body = poll(status_url)
        assert body["runtimeStatus"] == "Completed"
        assert body["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    finally:
        code = host.stop(signal.SIGINT)
    assert code == 0, host.output()
    assert "Traceback" not in host.output()
    assert (project / ".durafn" / "durafn.db").exists()


def test_sigterm_stops_cleanly_too(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(SAMPLES / "fan_out_fan_in", project)
    host = HostProcess(project, f"sqlite:///{tmp_path / 'x.db'}")
    try:
        host.wait_ready()
        response = httpx.post(f"{host.url}/api/fanout", json={"count": 40})
        body = poll(response.json()["statusQueryGetUri"])
        assert body["output"] == {"items": 40, "total": 6240}
    finally:
        code = host.stop(signal.SIGTERM)
    assert code == 0, host.output()
    assert "Traceback" not in host.output()


def run_cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "durafn", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_broken_apps_give_one_message_and_exit_1(tmp_path: Path) -> None:
    empty = run_cli(tmp_path, "start")
    assert empty.returncode == 1
    assert "no function_app.py" in empty.stderr and "Traceback" not in empty.stderr

    (tmp_path / "function_app.py").write_text("import durafn as df\napp = df.App(\n")
    syntax = run_cli(tmp_path, "start")
    assert syntax.returncode == 1
    assert "function_app.py:2" in syntax.stderr and "Traceback" not in syntax.stderr

    (tmp_path / "function_app.py").write_text(
        "import durafn as df\napp = df.App()\n\n@app.activity\ndef a(x):\n    return x\n\n"
        "@app.activity(name='a')\ndef b(x):\n    return x\n"
    )
    duplicate = run_cli(tmp_path, "start")
    assert duplicate.returncode == 1
    assert "two functions are named 'a'" in duplicate.stderr and "Traceback" not in duplicate.stderr


def test_second_host_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(SAMPLES / "function_chaining", project)
    first = HostProcess(project, "sqlite:///shared.db")
    try:
        first.wait_ready()
        second = run_cli(project, "start", "--port", "1", "--storage", "sqlite:///shared.db")
        assert second.returncode == 1
        assert "another durafn host" in second.stderr and "Traceback" not in second.stderr
    finally:
        assert first.stop() == 0
