"""Keys (SPEC §5): where they come from, the FUNCTION/ADMIN/ANONYMOUS levels, the management API's
master and system keys, and the check-status URLs, through the real Starlette app and through a
real ``durafn start``.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import guarded_app
import httpx
import httpx2
import pytest
from hostproc import HostProcess
from starlette.testclient import TestClient

from durafn.errors import KeysFileError
from durafn.host.asgi import build_asgi_app
from durafn.host.auth import KEYS_FILE, HostKeys, load_keys
from durafn.host.config import HostConfig

BASE = "/runtime/webhooks/durabletask"
# starlette's TestClient answers with httpx2 responses, a real host with httpx ones
Response = httpx.Response | httpx2.Response
KEYS = HostKeys(function="fn-key", master="master-key", system="system-key")
NO_ENV: dict[str, str] = {}


def key_of(url: str) -> str | None:
    codes = parse_qs(urlsplit(url).query).get("code")
    return codes[0] if codes else None


def wait_done(get: httpx.Client | TestClient, url: str, **kwargs: object) -> dict[str, object]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        response = get.get(url, **kwargs)  # type: ignore[arg-type]
        if response.status_code == 200:
            body: dict[str, object] = response.json()
            return body
        assert response.status_code == 202, response.text
        time.sleep(0.02)
    raise AssertionError(f"{url} did not finish")


# -- where keys come from --------------------------------------------------------------------


def test_keys_file_is_created_0600_with_random_keys_and_reused(tmp_path: Path) -> None:
    first = load_keys(tmp_path, NO_ENV)
    path = tmp_path / KEYS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len({first.function, first.master, first.system}) == 3
    assert all(len(first.value(name)) >= 32 for name in ("function", "master", "system"))
    assert first.sources["master"] == str(path.absolute())
    stored = json.loads(path.read_text())
    assert stored == {
        "functionKey": first.function,
        "masterKey": first.master,
        "systemKey": first.system,
    }
    again = load_keys(tmp_path, NO_ENV)
    assert (again.function, again.master, again.system) == (
        first.function,
        first.master,
        first.system,
    )
    assert [p.name for p in path.parent.iterdir()] == ["keys.json"]  # no temporary file left
    assert "master-key" not in repr(KEYS) and "fn-key" not in repr(KEYS)


def test_environment_variables_win_key_by_key(tmp_path: Path) -> None:
    env = {"DURAFN_MASTER_KEY": "from-env", "DURAFN_SYSTEM_KEY": ""}
    keys = load_keys(tmp_path, env)
    assert keys.master == "from-env" and keys.sources["master"] == "DURAFN_MASTER_KEY"
    stored = json.loads((tmp_path / KEYS_FILE).read_text())
    assert keys.system == stored["systemKey"]  # an empty variable counts as unset
    assert keys.function == stored["functionKey"]


def test_all_three_from_the_environment_need_no_file(tmp_path: Path) -> None:
    env = {"DURAFN_FUNCTION_KEY": "f", "DURAFN_MASTER_KEY": "m", "DURAFN_SYSTEM_KEY": "s"}
    keys = load_keys(tmp_path, env)
    assert (keys.function, keys.master, keys.system) == ("f", "m", "s")
    assert not (tmp_path / KEYS_FILE).exists()


@pytest.mark.parametrize(
    ("content", "complaint"),
    [("{not json", "not valid JSON"), ('{"functionKey": "f", "masterKey": "m"}', "systemKey")],
)
def test_a_broken_keys_file_is_a_clear_error(tmp_path: Path, content: str, complaint: str) -> None:
    path = tmp_path / KEYS_FILE
    path.parent.mkdir()
    path.write_text(content)
    with pytest.raises(KeysFileError, match=complaint) as caught:
        load_keys(tmp_path, NO_ENV)
    assert "delete" in str(caught.value)


# -- levels, through the real app --------------------------------------------------------------


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[TestClient]:
    config = HostConfig(storage=f"sqlite:///{tmp_path / 'durafn.db'}", require_keys=True)
    asgi = build_asgi_app(guarded_app.app, config, keys=KEYS)
    with TestClient(asgi, base_url="http://127.0.0.1:7071") as client:
        yield client


def assert_bare_401(response: Response) -> None:
    assert response.status_code == 401
    assert response.content == b""


def test_function_level_takes_the_function_or_master_key(keyed: TestClient) -> None:
    url = "/api/orchestrators/hello/f1"
    assert_bare_401(keyed.post(url))
    assert_bare_401(keyed.post(url, headers={"x-functions-key": "wrong"}))
    assert_bare_401(keyed.post(url, headers={"x-functions-key": KEYS.system}))
    assert_bare_401(keyed.post(url, params={"code": ""}))
    # not ASCII (compare_digest refuses such str): a 401, not a crash
    assert_bare_401(keyed.post(url, headers={b"x-functions-key": "kéy".encode("latin-1")}))
    assert_bare_401(keyed.post(url, params={"code": "ключ"}))
    assert keyed.post(url, headers={"x-functions-key": KEYS.function}).status_code == 202
    assert keyed.post(f"{url}x", params={"code": KEYS.master}).status_code == 202
    assert keyed.get(f"{BASE}/instances", params={"code": KEYS.master}).json()[0]["instanceId"]


def test_admin_level_takes_only_the_master_key(keyed: TestClient) -> None:
    assert_bare_401(keyed.get("/api/admin"))
    assert_bare_401(keyed.get("/api/admin", headers={"x-functions-key": KEYS.function}))
    assert_bare_401(keyed.get("/api/admin", params={"code": KEYS.system}))
    assert keyed.get("/api/admin", headers={"x-functions-key": KEYS.master}).text == "admin"
    assert keyed.get("/api/admin", params={"code": KEYS.master}).text == "admin"


def test_anonymous_level_needs_no_key(keyed: TestClient) -> None:
    assert keyed.get("/api/public").text == "public"
    assert keyed.get("/api/public", headers={"x-functions-key": "wrong"}).text == "public"


def test_no_key_is_checked_before_the_body_is_read(keyed: TestClient) -> None:
    # a 401 must not depend on (or reveal anything about) the body or the instance
    assert_bare_401(keyed.post("/api/orchestrators/hello/b1", content=b"{not json"))
    assert_bare_401(keyed.post(f"{BASE}/orchestrators/nope", content=b"x" * 10))
    assert_bare_401(keyed.get(f"{BASE}/instances/does-not-exist"))


@pytest.mark.parametrize("prefix", [BASE, "/durabletask"])
def test_management_api_takes_the_master_or_system_key(keyed: TestClient, prefix: str) -> None:
    url = f"{prefix}/instances"
    assert_bare_401(keyed.get(url))
    assert_bare_401(keyed.get(url, headers={"x-functions-key": KEYS.function}))
    assert_bare_401(keyed.get(url, params={"code": "master-key-but-longer"}))
    assert_bare_401(keyed.post(f"{prefix}/orchestrators/hello"))
    assert keyed.get(url, headers={"x-functions-key": KEYS.master}).status_code == 200
    assert keyed.get(url, params={"code": KEYS.system}).status_code == 200
    assert_bare_401(keyed.get(f"{BASE}/openapi.json"))
    assert keyed.get(f"{BASE}/openapi.json", params={"code": KEYS.system}).status_code == 200


def test_check_status_urls_carry_the_system_key_never_the_master_key(keyed: TestClient) -> None:
    via_api = keyed.post(f"{BASE}/orchestrators/hello/p1", params={"code": KEYS.master}, json="x")
    via_trigger = keyed.post(
        "/api/orchestrators/hello/p2", headers={"x-functions-key": KEYS.function}, json="y"
    )
    for response in (via_api, via_trigger):
        assert response.status_code == 202, response.text
        assert KEYS.master not in response.text
        payload = response.json()
        for name, url in payload.items():
            if name != "id":
                assert key_of(url) == KEYS.system, name
        assert response.headers["location"] == payload["statusQueryGetUri"]
    # the URLs work as given: the system key in them opens the management API
    body = wait_done(keyed, via_trigger.json()["statusQueryGetUri"])
    assert body["output"] == "Hello y!"


def test_keys_are_enforced_off_loopback(tmp_path: Path) -> None:
    assert HostConfig(host="0.0.0.0").keys_enforced
    assert HostConfig(host="::").keys_enforced
    assert HostConfig(host="192.168.1.10").keys_enforced
    assert not HostConfig(host="127.0.0.1").keys_enforced
    assert not HostConfig(host="localhost").keys_enforced
    assert HostConfig(host="::1", require_keys=True).keys_enforced
    config = HostConfig(storage=f"sqlite:///{tmp_path / 'durafn.db'}", host="0.0.0.0")
    with TestClient(build_asgi_app(guarded_app.app, config, keys=KEYS)) as client:
        assert_bare_401(client.get(f"{BASE}/instances"))
        assert_bare_401(client.post("/api/orchestrators/hello/z"))


def test_on_loopback_nothing_is_checked_and_urls_carry_no_code(tmp_path: Path) -> None:
    config = HostConfig(storage=f"sqlite:///{tmp_path / 'durafn.db'}")
    with TestClient(build_asgi_app(guarded_app.app, config, keys=KEYS)) as client:
        started = client.post("/api/orchestrators/hello/open")
        assert started.status_code == 202
        assert all(key_of(url) is None for url in started.json().values())
        assert client.get("/api/admin").text == "admin"
        assert client.get(f"{BASE}/instances").status_code == 200
    assert not (tmp_path / KEYS_FILE).exists()


# -- a real `durafn start` ------------------------------------------------------------------------


def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(guarded_app.SOURCE, folder / "function_app.py")
    return folder


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DURAFN_")}


def test_require_keys_on_a_real_host_uses_a_0600_keys_file(tmp_path: Path) -> None:
    folder = project(tmp_path)
    env = clean_env()
    host = HostProcess(folder, "sqlite:///.durafn/durafn.db", "--require-keys", env=env)
    try:
        host.wait_ready()
        path = folder / KEYS_FILE
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        stored = json.loads(path.read_text())
        banner = host.output()
        assert "Keys: enforced (--require-keys)" in banner
        assert str(path) in banner and "durafn keys" in banner
        assert stored["masterKey"] not in banner
        assert_bare_401(httpx.get(f"{host.url}{BASE}/instances"))
        assert_bare_401(httpx.post(f"{host.url}/api/orchestrators/hello/r1"))
        started = httpx.post(
            f"{host.url}/api/orchestrators/hello/r1",
            headers={"x-functions-key": stored["functionKey"]},
            json="real",
        )
        assert started.status_code == 202, started.text
        status_url = started.json()["statusQueryGetUri"]
        assert key_of(status_url) == stored["systemKey"]
        with httpx.Client() as client:
            assert wait_done(client, status_url)["output"] == "Hello real!"
        assert_bare_401(httpx.get(f"{host.url}/api/admin", params={"code": stored["systemKey"]}))
        assert httpx.get(f"{host.url}/api/admin", params={"code": stored["masterKey"]}).text == (
            "admin"
        )
    finally:
        assert host.stop() == 0, host.output()
    shown = subprocess.run(
        [sys.executable, "-m", "durafn", "keys", "--json"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(shown.stdout) == {
        "function": stored["functionKey"],
        "master": stored["masterKey"],
        "system": stored["systemKey"],
    }


def test_a_host_on_all_interfaces_enforces_keys_from_the_environment(tmp_path: Path) -> None:
    folder = project(tmp_path)
    env = clean_env() | {
        "DURAFN_FUNCTION_KEY": "env-function",
        "DURAFN_MASTER_KEY": "env-master",
        "DURAFN_SYSTEM_KEY": "env-system",
    }
    host = HostProcess(folder, "sqlite:///.durafn/durafn.db", "--host", "0.0.0.0", env=env)
    try:
        host.wait_ready()
        assert "Keys: enforced (this host listens on 0.0.0.0)" in host.output()
        assert_bare_401(httpx.get(f"{host.url}{BASE}/instances"))
        assert_bare_401(httpx.get(f"{host.url}{BASE}/instances", params={"code": "env-function"}))
        listed = httpx.get(f"{host.url}{BASE}/instances", headers={"x-functions-key": "env-system"})
        assert listed.status_code == 200
        started = httpx.post(
            f"{host.url}{BASE}/orchestrators/hello/e1", headers={"x-functions-key": "env-master"}
        )
        assert started.status_code == 202
        assert key_of(started.json()["statusQueryGetUri"]) == "env-system"
        assert "env-master" not in started.text
        assert httpx.get(f"{host.url}/api/public").text == "public"
    finally:
        assert host.stop() == 0, host.output()
    assert not (folder / KEYS_FILE).exists()


def test_durafn_keys_creates_the_file_and_shows_where_keys_come_from(tmp_path: Path) -> None:
    env = clean_env() | {"DURAFN_SYSTEM_KEY": "sys-from-env"}
    shown = subprocess.run(
        [sys.executable, "-m", "durafn", "keys"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    stored = json.loads((tmp_path / KEYS_FILE).read_text())
    assert stat.S_IMODE((tmp_path / KEYS_FILE).stat().st_mode) == 0o600
    lines = shown.stdout.splitlines()
    assert lines[0].split()[:2] == ["function", stored["functionKey"]]
    assert lines[1].split()[:2] == ["master", stored["masterKey"]]
    assert lines[2].split()[:2] == ["system", "sys-from-env"]
    assert "DURAFN_SYSTEM_KEY" in lines[2] and "keys.json" in lines[0]
