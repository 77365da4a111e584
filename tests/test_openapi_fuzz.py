"""The management API against its own OpenAPI document: schemathesis generates valid and invalid
requests for every operation from the served document and sends them to the real Starlette app
(a real Runtime on a real SQLite file); no answer may be a 5xx, and every answer must conform to
the document (status code, content type, headers, body schema).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import guarded_app
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.python.asgi import get_client, shutdown_lifespans
from starlette.applications import Starlette
from starlette.testclient import TestClient

from durafn.errors import InvalidInstanceIdError
from durafn.host.asgi import build_asgi_app
from durafn.host.config import HostConfig
from durafn.host.openapi import OPENAPI_PATH, openapi_document
from durafn.models import validate_instance_id

# Both on purpose: the API is lenient where Azure's is (1/0/yes/no booleans, empty values mean
# "not given"), and valid-looking input may well name no instance (404) or a finished one (410).
EXCLUDED_CHECKS = ["positive_data_acceptance", "negative_data_rejection"]
BASE = "/runtime/webhooks/durabletask"


CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"max-examples": 100, "mode": "all", "database": "none"},
        "checks": {name: {"enabled": False} for name in EXCLUDED_CHECKS},
    }
)
# The document as the code builds it (the served copy is compared with it below). Loaded at import
# and not from a fixture: schemathesis' fixture-based loader does not run under pytest 9.
SCHEMA = schemathesis.openapi.from_dict(openapi_document(), config=CONFIG)


# Instances the fuzzer is steered to, so that it also reaches the answers about real instances.
SEEDED = {"fz-done": "hello", "fz-waiting": "waiter", "fz-failed": "failing"}


@pytest.fixture(scope="module")
def asgi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Starlette]:
    folder = tmp_path_factory.mktemp("fuzz")
    app = build_asgi_app(guarded_app.app, HostConfig(storage=f"sqlite:///{folder / 'durafn.db'}"))
    # schemathesis starts the app's lifespan (the Runtime) on first use and keeps it running;
    # its own client, so that the seeds are made by the same Runtime
    with get_client(app) as client:  # type: ignore[arg-type]  # ASGI types differ only in names
        for instance_id, name in SEEDED.items():
            started = client.post(f"{BASE}/orchestrators/{name}/{instance_id}", json="seed")
            assert started.status_code == 202, started.text
        deadline = time.monotonic() + 15
        for instance_id in ("fz-done", "fz-failed"):
            while client.get(f"{BASE}/instances/{instance_id}").status_code != 200:
                assert time.monotonic() < deadline, f"{instance_id} did not finish"
                time.sleep(0.02)
    yield app
    shutdown_lifespans()


def steer(case: Any) -> None:
    """Point about half the generated names and ids at the app's orchestrators and the seeded
    instances; which half follows from the generated value, so a failure still reproduces.
    Values the API must refuse are left as they are.
    """
    params = case.path_parameters
    if not params:
        return
    name = params.get("functionName")
    if isinstance(name, str) and len(name) % 2 == 0:
        names = sorted(set(SEEDED.values()))
        params["functionName"] = names[len(name) // 2 % len(names)]
    instance_id = params.get("instanceId")
    if isinstance(instance_id, str) and len(instance_id) % 2 == 0:
        try:
            validate_instance_id(instance_id)
        except InvalidInstanceIdError:
            return
        ids = sorted(SEEDED)
        params["instanceId"] = ids[len(instance_id) // 2 % len(ids)]


@SCHEMA.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_management_api_conforms_to_its_openapi_document(case: Any, asgi: Starlette) -> None:
    steer(case)
    case.call_and_validate(app=asgi)


def test_the_document_is_served_and_names_every_operation(tmp_path: Any) -> None:
    config = HostConfig(storage=f"sqlite:///{tmp_path / 'durafn.db'}")
    with TestClient(build_asgi_app(guarded_app.app, config)) as client:
        served = client.get(OPENAPI_PATH)
        assert served.status_code == 200
        assert served.json() == openapi_document()
    operations = {
        (method.upper(), path.removeprefix("/runtime/webhooks/durabletask"))
        for path, item in openapi_document()["paths"].items()
        for method in item
    }
    assert operations == {
        ("POST", "/orchestrators/{functionName}"),
        ("POST", "/orchestrators/{functionName}/{instanceId}"),
        ("GET", "/instances"),
        ("DELETE", "/instances"),
        ("GET", "/instances/{instanceId}"),
        ("DELETE", "/instances/{instanceId}"),
        ("POST", "/instances/{instanceId}/raiseEvent/{eventName}"),
        ("POST", "/instances/{instanceId}/terminate"),
        ("POST", "/instances/{instanceId}/suspend"),
        ("POST", "/instances/{instanceId}/resume"),
        ("POST", "/instances/{instanceId}/rewind"),
        ("POST", "/instances/{instanceId}/restart"),
        ("GET", "/openapi.json"),
    }
