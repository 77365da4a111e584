"""The seed's check-then-start handler, copied as is, is race-free against a real `durafn start`."""

import shutil
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from hostproc import HostProcess

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
BASE = "/runtime/webhooks/durabletask"


def test_concurrent_starts_of_one_id_make_one_instance(tmp_path: Path) -> None:
    project = tmp_path / "singleton"
    shutil.copytree(SAMPLES / "singleton", project)
    host = HostProcess(project, f"sqlite:///{tmp_path / 'durafn.db'}")
    try:
        host.wait_ready()
        url = f"{host.url}/api/orchestrators/nightly_job/the-one"
        with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=40)) as http:
            with ThreadPoolExecutor(40) as pool:
                codes = list(pool.map(lambda _: http.post(url).status_code, range(40)))
            assert codes.count(202) == 1, codes
            assert codes.count(409) == 39, codes
            for n in range(3):  # through the management API as well
                again = http.post(f"{host.url}{BASE}/orchestrators/nightly_job/the-one")
                assert again.status_code == 409, (n, again.text)
            history = http.get(f"{host.url}{BASE}/instances/the-one?showHistory=true").json()
            kinds = [e["EventType"] for e in history["historyEvents"]]
            assert kinds.count("ExecutionStarted") == 1
            assert len(http.get(f"{host.url}{BASE}/instances").json()) == 1
    finally:
        assert host.stop(signal.SIGINT) == 0
