"""The "HTTP starts" shape: POSTs/s through a real ``durafn start`` with a keep-alive client.

The host serves bench/http_app (a route that starts a 3-step orchestration and answers 202) on a
free port, from a temporary project folder, on a fresh store (bench/stores.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.measure import BenchError, Result, run_concurrently

ROOT = Path(__file__).resolve().parent.parent
APP = "bench.http_app.function_app:app"
ROUTE = "/api/start"


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Host:
    """``durafn start`` in a subprocess, serving the bench app from ``folder``."""

    def __init__(self, folder: Path, storage: str) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = folder / "host.log"
        command = [sys.executable, "-m", "durafn", "start", "--port", str(port), "--app", APP]
        # the folder is the project folder (its .durafn/ keys); the repository provides `bench`
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [*command, "--storage", storage],
                cwd=folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": path},
            )

    def failure(self, what: str) -> BenchError:
        """An error saying ``what`` went wrong, with the end of the host's log."""
        return BenchError(f"durafn start: {what}; its log ends:\n{self.log.read_text()[-3000:]}")

    def wait_ready(self, timeout: float = 30) -> None:
        """Return once the host answers HTTP; fail if it exits or stays silent."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise self.failure(f"exited with {self.proc.returncode} before answering")
            try:
                httpx.get(f"{self.url}/runtime/webhooks/durabletask/instances?top=1", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise self.failure(f"did not answer within {timeout:.0f} s")

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (a graceful stop), then SIGKILL if it lingers past ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs and reads the answer, and nothing more.

    httpx cost the client about 3 ms of CPU per request, on the same two cores as the host, so
    the figure measured the client; this costs a few dozen microseconds (like wrk would).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, url: str) -> Connection:
        """Connect to ``url``'s host and port."""
        host, port = url.removeprefix("http://").split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def post(self, path: str) -> tuple[int, bytes]:
        """POST an empty body to ``path``; the status code and the response body."""
        self._writer.write(
            f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: 0\r\n\r\n".encode()
        )
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self._reader.readexactly(length)

    async def close(self) -> None:
        """Close the connection."""
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


async def post_starts(url: str, count: int, connections: int) -> float:
    """Seconds for ``count`` POSTs over ``connections`` keep-alive connections, all 202."""
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    opened = [await Connection.open(url) for _ in range(connections)]
    for connection in opened:
        idle.put_nowait(connection)

    async def one() -> None:
        connection = await idle.get()
        try:
            status, body = await connection.post(ROUTE)
        finally:
            idle.put_nowait(connection)
        if status != 202:
            raise BenchError(f"POST {ROUTE} answered {status}: {body[:500]!r}")

    try:
        return await run_concurrently(one, count, connections)
    finally:
        for connection in opened:
            await connection.close()


def http_starts(folder: Path, storage: str, count: int, connections: int = 32) -> Result:
    """Start a host in ``folder`` on ``storage``, POST ``count`` starts, stop it: POSTs/s."""
    host = Host(folder, storage)
    try:
        host.wait_ready()
        seconds = asyncio.run(post_starts(host.url, count, connections))
    except BenchError as exc:
        # a non-202 is usually explained by a traceback in the host's log
        raise host.failure(str(exc)) from None
    finally:
        host.stop()
    detail = f"{count} POSTs, all 202, {connections} keep-alive connections"
    return Result("HTTP starts", count / seconds, "req/s", detail)
