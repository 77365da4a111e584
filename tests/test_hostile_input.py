"""Hostile requests (SPEC §9): each gets a 4xx with a JSON ``{"error": ...}`` body, nothing is
stored, and the host goes on serving, through the real Starlette app and a real ``durafn start``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import guarded_app
import httpx
import pytest
import uvicorn
from hostproc import HostProcess
from starlette.testclient import TestClient

from durafn.host.asgi import build_asgi_app
from durafn.host.config import DEFAULT_MAX_BODY_BYTES, HostConfig
from durafn.host.protocol import HTTP_PROTOCOL, JsonErrorsH11Protocol

B = "/runtime/webhooks/durabletask"
SDK = "/durabletask"
SEED = "seed"  # a Completed instance every test starts with


@dataclass(frozen=True)
class Hostile:
    """One hostile request and the status it must get."""

    method: str
    path: str
    status: int
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.method} {self.path[:70]}"


def token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


DEEP = b"[" * 100_000
HOSTILE = [
    # bodies: malformed, too deep, not UTF-8, values JSON does not have
    Hostile("POST", f"{B}/orchestrators/hello/x", 400, DEEP),
    Hostile("POST", f"{SDK}/orchestrators/hello/x", 400, json.dumps(DEEP.decode()).encode()),
    Hostile("POST", "/api/orchestrators/hello/x", 400, DEEP),
    Hostile("POST", "/api/echo", 400, DEEP),
    Hostile("POST", f"{B}/orchestrators/hello/x", 400, b"{not json"),
    Hostile("POST", f"{B}/orchestrators/hello/x", 400, b"[" * 70 + b"]" * 70),
    Hostile("POST", f"{B}/orchestrators/hello/x", 400, b'{"a":' * 900 + b"1" + b"}" * 900),
    Hostile("POST", f"{B}/orchestrators/hello/x", 400, b"1" * 5000),
    Hostile("POST", f"{B}/orchestrators/hello/x", 400, b"[NaN, Infinity]"),
    Hostile("POST", f"{B}/orchestrators/hello/x", 400, b"1e999"),
    Hostile("POST", f"{B}/orchestrators/hello/x", 400, b"\xff\xfe\xfa\x00"),
    Hostile("POST", f"{B}/orchestrators/hello/x", 400, b'"caf\xe9"'),
    Hostile("POST", f"{B}/orchestrators/hello/x", 400, b'["\\ud800"]'),
    Hostile("POST", f"{B}/orchestrators/hello/x", 400, b'{"\\udc80": 1}'),
    Hostile("POST", f"{SDK}/orchestrators/hello/x", 400, json.dumps('"\\ud800"').encode()),
    Hostile("POST", f"{SDK}/orchestrators/hello/x", 400, b'"not json inside"'),
    Hostile("POST", f"{B}/instances/{SEED}/raiseEvent/go", 400, DEEP),
    Hostile("POST", f"{SDK}/instances/{SEED}/raiseEvent/go", 400, b'"[1,"'),
    # bodies past the limit, declared or streamed
    Hostile("POST", f"{B}/orchestrators/hello/x", 413, b"1" * (DEFAULT_MAX_BODY_BYTES + 1)),
    Hostile("POST", "/api/orchestrators/hello/x", 413, b" " * (DEFAULT_MAX_BODY_BYTES + 1)),
    Hostile("POST", f"{B}/instances/{SEED}/terminate", 413, b"x" * (DEFAULT_MAX_BODY_BYTES + 1)),
    # instance ids: too long, control characters, / \ # ?
    Hostile("POST", f"{B}/orchestrators/hello/{'x' * 257}", 400),
    Hostile("POST", "/api/orchestrators/hello/" + "x" * 257, 400),
    Hostile("POST", f"{B}/orchestrators/hello/a%00b", 400),
    Hostile("POST", f"{B}/orchestrators/hello/a%0Ab", 400),
    Hostile("POST", f"{B}/orchestrators/hello/a%1Bb", 400),
    Hostile("POST", f"{B}/orchestrators/hello/a%7Fb", 400),
    Hostile("POST", f"{B}/orchestrators/hello/a%C2%85b", 400),
    Hostile("POST", f"{B}/orchestrators/hello/a%23b", 400),
    Hostile("POST", f"{B}/orchestrators/hello/a%3Fb", 400),
    Hostile("POST", f"{B}/orchestrators/hello/a%5Cb", 400),
    Hostile("POST", f"{B}/orchestrators/hello/a%2Fb", 404),
    Hostile("POST", "/api/orchestrators/hello/a%00b", 400),
    Hostile("POST", "/api/orchestrators/hello/a%5Cb", 400),
    Hostile("POST", "/api/orchestrators/hello/a%2Fb", 404),
    Hostile("GET", f"{B}/instances/{'x' * 5000}", 400),
    Hostile("GET", f"{B}/instances/a%00b", 400),
    Hostile("DELETE", f"{B}/instances/a%5Cb", 400),
    Hostile("POST", f"{B}/instances/a%23b/terminate", 400),
    Hostile("POST", f"{B}/instances/a%01/raiseEvent/go", 400),
    # unknown names
    Hostile("POST", f"{B}/orchestrators/nope", 404),
    Hostile("POST", f"{B}/orchestrators/{'f' * 5000}", 404),
    Hostile("POST", f"{B}/orchestrators/say_hello", 404),  # an activity, not an orchestrator
    Hostile("POST", "/api/orchestrators/nope/x", 404),
    Hostile("GET", f"{B}/instances/unknown-instance", 404),
    Hostile("DELETE", f"{B}/instances/unknown-instance", 404),
    Hostile("POST", f"{B}/instances/unknown-instance/raiseEvent/go", 404),
    Hostile("POST", f"{B}/instances/unknown-instance/terminate", 404),
    Hostile("POST", f"{B}/instances/{SEED}/frobnicate", 404),
    Hostile("POST", f"{B}/instances/{SEED}/raiseEvent/unknown-event", 410),  # it has finished
    Hostile("POST", f"{B}/instances/{SEED}/raiseEvent/a%00b", 400),
    Hostile("POST", f"{B}/instances/{SEED}/raiseEvent/{'e' * 257}", 400),
    Hostile("POST", f"{B}/instances/{SEED}/terminate", 410),
    Hostile("POST", f"{B}/instances/{SEED}/terminate?reason=a%00b", 400),
    Hostile("GET", f"{B}/nothing/here", 404),
    # query values
    Hostile("GET", f"{B}/instances?top=0", 400),
    Hostile("GET", f"{B}/instances?top=-1", 400),
    Hostile("GET", f"{B}/instances?top=1001", 400),
    Hostile("GET", f"{B}/instances?top=abc", 400),
    Hostile("GET", f"{B}/instances?top=1.5", 400),
    Hostile("GET", f"{B}/instances?top=%C2%B2", 400),
    Hostile("GET", f"{B}/instances?top={'9' * 5000}", 400),
    Hostile("GET", f"{B}/instances?createdTimeFrom=yesterday", 400),
    Hostile("GET", f"{B}/instances?createdTimeTo=2026-02-30T00:00:00Z", 400),
    Hostile("GET", f"{B}/instances?createdTimeFrom=9999-12-31T23:59:59-10:00", 400),
    Hostile("GET", f"{B}/instances?createdTimeFrom=0001-01-01T00:00:00%2B10:00", 400),
    Hostile("DELETE", f"{B}/instances?createdTimeFrom=0001-01-01T00:00:00%2B10:00", 400),
    Hostile("DELETE", f"{B}/instances?runtimeStatus=Bogus", 400),
    Hostile("GET", f"{B}/instances?runtimeStatus=Bogus", 400),
    Hostile("GET", f"{B}/instances?runtimeStatus=,,", 400),
    Hostile("GET", f"{B}/instances?showInput=maybe", 400),
    Hostile("GET", f"{B}/instances?instanceIdPrefix=a%00", 400),
    Hostile("GET", f"{B}/instances?instanceIdPrefix={'p' * 300}", 400),
    Hostile("GET", f"{B}/instances/{SEED}?showHistory=maybe", 400),
    Hostile("GET", f"{B}/instances/{SEED}?showHistoryOutput=2", 400),
    Hostile("POST", f"{B}/instances/{SEED}/restart?restartWithNewInstanceId=maybe", 400),
    Hostile("GET", f"{B}/instances", 400, headers={"x-ms-continuation-token": "garbage"}),
    Hostile("GET", f"{B}/instances", 400, headers={"x-ms-continuation-token": "%%%"}),
    Hostile("GET", f"{B}/instances", 400, headers={"x-ms-continuation-token": token(b"[1]")}),
    Hostile("GET", f"{B}/instances", 400, headers={"x-ms-continuation-token": token(b"[" * 3000)}),
    Hostile(
        "GET",
        f"{B}/instances",
        400,
        headers={"x-ms-continuation-token": token(b'["not a time", "x"]')},
    ),
    # wrong methods
    Hostile("PUT", f"{B}/instances", 405),
    Hostile("PATCH", f"{B}/instances/{SEED}", 405),
    Hostile("GET", f"{B}/orchestrators/hello", 405),
    Hostile("DELETE", f"{B}/orchestrators/hello/x", 405),
    Hostile("GET", f"{B}/instances/{SEED}/terminate", 405),
    Hostile("PUT", "/api/public", 405),
]


# starlette's TestClient (on httpx2) in process, httpx against a real host
Client = TestClient | httpx.Client


def seed(client: Client) -> list[Any]:
    """Start SEED and wait for it to finish; the store's instances as GET /instances shows them."""
    assert client.post("/api/orchestrators/hello/seed", json="seed").status_code == 202
    deadline = time.monotonic() + 15
    while client.get(f"{B}/instances/{SEED}").status_code != 200:
        assert time.monotonic() < deadline, "the seed instance did not finish"
        time.sleep(0.02)
    return snapshot(client)


def snapshot(client: Client) -> list[Any]:
    response = client.get(f"{B}/instances?showInput=true")
    assert response.status_code == 200
    body: list[Any] = response.json()
    return body


def assert_refused(client: Client, hostile: Hostile) -> None:
    response = client.request(
        hostile.method, hostile.path, content=hostile.content, headers=hostile.headers
    )
    assert response.status_code == hostile.status, (str(hostile), response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), str(hostile)
    error = response.json()["error"]
    assert isinstance(error, str) and error, str(hostile)


def assert_host_unharmed(client: Client, before: list[Any]) -> None:
    assert snapshot(client) == before  # nothing stored, nothing changed
    assert client.get("/api/public").text == "public"
    started = client.post(f"{B}/orchestrators/hello/after", json="after")
    assert started.status_code == 202, started.text


@pytest.fixture
def http(tmp_path: Path) -> Iterator[TestClient]:
    config = HostConfig(storage=f"sqlite:///{tmp_path / 'durafn.db'}")
    with TestClient(build_asgi_app(guarded_app.app, config), raise_server_exceptions=True) as c:
        yield c


def test_each_hostile_request_gets_a_json_4xx_and_changes_nothing(http: TestClient) -> None:
    before = seed(http)
    for hostile in HOSTILE:
        assert_refused(http, hostile)
    assert_host_unharmed(http, before)


def test_a_streamed_body_past_the_limit_is_413(tmp_path: Path) -> None:
    config = HostConfig(storage=f"sqlite:///{tmp_path / 'durafn.db'}", max_body_bytes=1000)

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"[1]" * 100

    with TestClient(build_asgi_app(guarded_app.app, config)) as client:
        response = client.post(f"{B}/orchestrators/hello/s1", content=chunks())
        assert response.status_code == 413 and "1000" in response.json()["error"]
        assert client.get(f"{B}/instances").json() == []


def test_odd_but_valid_input_is_served(http: TestClient) -> None:
    # an int route value of thousands of digits once made starlette's int() raise while routing
    digits = "9" * 5000
    assert http.get(f"/api/echo/{digits}").json()["route"] == {"count": digits}
    # a lone surrogate a function returns is sent ASCII-escaped instead of failing to encode
    assert http.get("/api/lone").json() == {"text": "\ud800"}
    # unicode ids, spaces and the largest id are fine
    for instance_id in ("ünï cödé", "x" * 256, "a.b-c_d~e!$&'()*+,;=:@"):
        quoted = httpx.URL(f"http://h/{instance_id}").raw_path.decode()[1:]
        started = http.post(f"{B}/orchestrators/hello/{quoted}")
        assert started.status_code == 202, (instance_id, started.text)
        assert started.json()["id"] == instance_id


# -- through a real `durafn start` ----------------------------------------------------------------


def raw_request(port: int, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection; whatever comes back before the server closes."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(data)
            while chunk := sock.recv(65536):
                received += chunk
        except (ConnectionResetError, BrokenPipeError, TimeoutError):
            # the server answered (or not) and closed before taking all of data
            pass
    return received


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def test_a_real_host_refuses_hostile_requests_and_keeps_serving(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(guarded_app.SOURCE, folder / "function_app.py")
    host = HostProcess(folder, "sqlite:///.durafn/durafn.db")
    try:
        host.wait_ready()
        with httpx.Client(base_url=host.url, timeout=30) as client:
            before = seed(client)
            for hostile in HOSTILE:
                assert_refused(client, hostile)
            # uvicorn's C parser sets no limit on a header's size: a huge one is served
            huge = b"GET /api/public HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n"
            for size in (20_000, 1_000_000):
                status = status_of(raw_request(host.port, huge % (b"a" * size)))
                assert status in (0, 200, 400, 431), size
            # what the parser refuses, before the app sees it, gets the JSON error body too
            for data in (
                b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
                b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                b"Content-Length: 9\r\n\r\nhello",
                b"GARBAGE\r\n\r\n",
                b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET /api/public HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
            ):
                answer = raw_request(host.port, data)
                assert status_of(answer) == 400, (data[:40], answer[:200])
                head, _, body = answer.partition(b"\r\n\r\n")
                assert b"content-type: application/json" in head.lower()
                assert "not valid HTTP" in json.loads(body)["error"]
            assert_host_unharmed(client, before)
    finally:
        code = host.stop()
    output = host.output()
    assert code == 0, output
    assert "Traceback" not in output


@pytest.mark.parametrize("protocol", [JsonErrorsH11Protocol, HTTP_PROTOCOL])
def test_both_http_protocols_refuse_malformed_requests_with_json(
    protocol: type[asyncio.Protocol],
) -> None:
    # HTTP_PROTOCOL is the C parser's where httptools is installed; the pure-Python one serves
    # where it is not
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("a malformed request must not reach the app")

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, port=port, http=protocol, lifespan="off", log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        answer = raw_request(port, b"GARBAGE\r\n\r\n")
    finally:
        server.should_exit = True
        thread.join(10)

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert "not valid HTTP" in json.loads(body)["error"]
