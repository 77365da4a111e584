"""A real ``durafn start`` in a subprocess, for tests that need the whole host."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class HostProcess:
    """``python -m durafn start`` in ``folder``; ``url`` once it answers."""

    def __init__(
        self, folder: Path, storage: str, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"host-{self.port}.log"
        command = [
            sys.executable,
            "-m",
            "durafn",
            "start",
            "--port",
            str(self.port),
            "--storage",
            storage,
            *extra,
        ]
        self._log_file = self.log.open("w")
        self.proc = subprocess.Popen(
            command,
            cwd=folder,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
        )

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"host exited with {self.proc.returncode}:\n{self.output()}")
            try:
                httpx.get(f"{self.url}/runtime/webhooks/durabletask/instances?top=1", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"host did not start:\n{self.output()}")

    def output(self) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log.read_text()

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()
        return self.proc.returncode

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._log_file.close()
