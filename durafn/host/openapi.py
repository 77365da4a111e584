"""The OpenAPI 3.1 document of the management API, served at
``/runtime/webhooks/durabletask/openapi.json``.

Written by hand to say what the handlers in webhooks.py accept and answer; the test suite fuzzes
the running app against it with schemathesis, so a handler and this document cannot drift apart
unnoticed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from durafn.errors import DurafnError
from durafn.host.errors import durafn_error
from durafn.host.responses import SafeJSONResponse
from durafn.management import WEBHOOK_PREFIX
from durafn.models import MAX_EVENT_NAME_LENGTH, MAX_INSTANCE_ID_LENGTH, OrchestrationRuntimeStatus

OPENAPI_PATH = f"{WEBHOOK_PREFIX}/openapi.json"

_JSON = "application/json"
# what an instance id may not hold: control characters and / \ # ? (SPEC §4)
_ID_PATTERN = "^[^\\x00-\\x1f\\x7f-\\x9f/\\\\#?]+$"
_NAME_PATTERN = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
_STATUS_NAMES = "|".join(s.value for s in OrchestrationRuntimeStatus)
# true/false as the handlers read them: any case, also 1/0 and yes/no; empty means the default
_BOOL_PATTERN = "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|[Yy][Ee][Ss]|[Nn][Oo]|1|0)?$"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_UNAUTHORIZED = {"description": "Keys are enforced and no valid master or system key was given."}
_BAD_REQUEST = _error("A malformed id, name, query value or body; the error says which.")
_NOT_FOUND = _error("No such instance (or function, or path).")
_TOO_LARGE = _error("The body is larger than the host's limit (DURAFN_MAX_BODY_BYTES).")
_GONE = _error("The instance's state forbids the action (e.g. it has finished).")


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _bool_query(name: str, default: bool, description: str) -> dict[str, Any]:
    schema = {"type": "string", "pattern": _BOOL_PATTERN, "default": str(default).lower()}
    return _query(name, schema, f"{description} (true or false)")


_INSTANCE_ID = {
    "name": "instanceId",
    "in": "path",
    "required": True,
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_INSTANCE_ID_LENGTH,
        "pattern": _ID_PATTERN,
    },
    "description": "1 to 256 characters; no control characters and none of / \\ # ?",
}
_AZURE_QUERY = [
    _query("taskHub", {"type": "string"}, "Accepted for Azure compatibility and ignored."),
    _query("connection", {"type": "string"}, "Accepted for Azure compatibility and ignored."),
]
_REASON = _query(
    "reason",
    {"type": "string", "pattern": "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"},
    "Why; no control characters but tab and newlines.",
)
_BODY = {
    "required": False,
    "description": "Any JSON value (nested at most 64 levels); an empty body is null.",
    "content": {_JSON: {"schema": {}}},
}
_CHECK_STATUS = {
    "description": "Started: the check-status payload, Location at its status URL.",
    "headers": {
        "Location": {"required": True, "schema": {"type": "string"}},
        "Retry-After": {"required": True, "schema": {"type": "string"}},
    },
    "content": {_JSON: {"schema": {"$ref": "#/components/schemas/CheckStatusPayload"}}},
}
_FILTERS = [
    _query(
        "runtimeStatus",
        {
            "type": "string",
            "pattern": f"^(\\s*({_STATUS_NAMES})\\s*)(,\\s*({_STATUS_NAMES})\\s*)*$",
        },
        "Comma-separated runtime statuses.",
    ),
    _query("createdTimeFrom", {"type": "string", "format": "date-time"}, "ISO 8601, UTC."),
    _query("createdTimeTo", {"type": "string", "format": "date-time"}, "ISO 8601, UTC."),
]


def _start(with_id: bool) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {
            "name": "functionName",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1},
            "description": "An orchestrator of the app.",
        }
    ]
    if with_id:
        parameters.append(_INSTANCE_ID)
    return {
        "post": {
            "operationId": "startWithId" if with_id else "start",
            "summary": "Start an orchestration" + (" with this instance id" if with_id else ""),
            "parameters": parameters + _AZURE_QUERY,
            "requestBody": _BODY,
            "responses": {
                "202": _CHECK_STATUS,
                "400": _BAD_REQUEST,
                "401": _UNAUTHORIZED,
                "404": _error("No orchestrator of that name."),
                "409": _error("An instance with that id is Pending, Running or Suspended."),
                "413": _TOO_LARGE,
            },
        }
    }


def _action(name: str, summary: str) -> dict[str, Any]:
    restart = name == "restart"
    parameters = [_INSTANCE_ID, *_AZURE_QUERY]
    if restart:
        parameters.append(
            _bool_query("restartWithNewInstanceId", True, "Start under a new random id")
        )
    else:
        parameters.append(_REASON)
    accepted = _CHECK_STATUS if restart else {"description": "Accepted."}
    return {
        "post": {
            "operationId": name,
            "summary": summary,
            "parameters": parameters,
            "responses": {
                "202": accepted,
                "400": _BAD_REQUEST,
                "401": _UNAUTHORIZED,
                "404": _NOT_FOUND,
                "410": _GONE,
                "413": _TOO_LARGE,
            },
        }
    }


def _paths() -> dict[str, Any]:
    instance = f"{WEBHOOK_PREFIX}/instances/{{instanceId}}"
    status_json = {_JSON: {"schema": {"$ref": "#/components/schemas/Status"}}}
    purged = {
        "description": "Purged.",
        "content": {_JSON: {"schema": {"$ref": "#/components/schemas/PurgeResult"}}},
    }
    return {
        f"{WEBHOOK_PREFIX}/orchestrators/{{functionName}}": _start(with_id=False),
        f"{WEBHOOK_PREFIX}/orchestrators/{{functionName}}/{{instanceId}}": _start(with_id=True),
        f"{WEBHOOK_PREFIX}/instances": {
            "get": {
                "operationId": "listInstances",
                "summary": "One page of instance statuses, oldest first",
                "parameters": [
                    *_FILTERS,
                    _query(
                        "instanceIdPrefix",
                        {
                            "type": "string",
                            "maxLength": MAX_INSTANCE_ID_LENGTH,
                            "pattern": "^$|" + _ID_PATTERN,
                        },
                        "Only ids starting with this.",
                    ),
                    _query(
                        "top",
                        {"type": "integer", "minimum": 1, "maximum": 1000},
                        "Instances per page.",
                    ),
                    _bool_query("showInput", False, "Include each instance's input"),
                    {
                        "name": "x-ms-continuation-token",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "The token of the previous page, unchanged.",
                    },
                    *_AZURE_QUERY,
                ],
                "responses": {
                    "200": {
                        "description": "A page; the next page's token in x-ms-continuation-token.",
                        "headers": {
                            "x-ms-continuation-token": {
                                "required": False,
                                "schema": {"type": "string"},
                            }
                        },
                        "content": {
                            _JSON: {
                                "schema": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Status"},
                                }
                            }
                        },
                    },
                    "400": _BAD_REQUEST,
                    "401": _UNAUTHORIZED,
                },
            },
            "delete": {
                "operationId": "purgeInstances",
                "summary": "Purge every finished instance matching the filters",
                "parameters": [*_FILTERS, *_AZURE_QUERY],
                "responses": {"200": purged, "400": _BAD_REQUEST, "401": _UNAUTHORIZED},
            },
        },
        instance: {
            "get": {
                "operationId": "getStatus",
                "summary": "An instance's status",
                "parameters": [
                    _INSTANCE_ID,
                    _bool_query("showHistory", False, "Include the history"),
                    _bool_query("showHistoryOutput", False, "Include inputs and results in it"),
                    _bool_query("showInput", True, "Include the input"),
                    *_AZURE_QUERY,
                ],
                "responses": {
                    "200": {"description": "Finished.", "content": status_json},
                    "202": {
                        "description": "Pending, Running or Suspended.",
                        "content": status_json,
                    },
                    "400": _BAD_REQUEST,
                    "401": _UNAUTHORIZED,
                    "404": _NOT_FOUND,
                },
            },
            "delete": {
                "operationId": "purgeInstance",
                "summary": "Purge a finished instance and its history",
                "parameters": [_INSTANCE_ID, *_AZURE_QUERY],
                "responses": {
                    "200": purged,
                    "400": _BAD_REQUEST,
                    "401": _UNAUTHORIZED,
                    "404": _NOT_FOUND,
                    "409": _error("The instance is Pending, Running or Suspended."),
                },
            },
        },
        f"{instance}/raiseEvent/{{eventName}}": {
            "post": {
                "operationId": "raiseEvent",
                "summary": "Send an event; it is kept until the orchestrator waits for it",
                "parameters": [
                    _INSTANCE_ID,
                    {
                        "name": "eventName",
                        "in": "path",
                        "required": True,
                        "schema": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_EVENT_NAME_LENGTH,
                            "pattern": _NAME_PATTERN,
                        },
                    },
                    *_AZURE_QUERY,
                ],
                "requestBody": _BODY,
                "responses": {
                    "202": {"description": "Accepted."},
                    "400": _BAD_REQUEST,
                    "401": _UNAUTHORIZED,
                    "404": _NOT_FOUND,
                    "410": _GONE,
                    "413": _TOO_LARGE,
                },
            }
        },
        f"{instance}/terminate": _action("terminate", "Terminate an active instance"),
        f"{instance}/suspend": _action("suspend", "Suspend an active instance"),
        f"{instance}/resume": _action("resume", "Resume a suspended instance"),
        f"{instance}/rewind": _action("rewind", "Retry the failed work of a Failed instance"),
        f"{instance}/restart": _action("restart", "Start the instance's orchestrator again"),
        OPENAPI_PATH: {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {
                    "200": {"description": "OpenAPI 3.1", "content": {_JSON: {"schema": {}}}},
                    "401": _UNAUTHORIZED,
                },
            }
        },
    }


def _schemas() -> dict[str, Any]:
    nullable_time = {"type": ["string", "null"], "format": "date-time"}
    payload_fields = [
        "statusQueryGetUri",
        "sendEventPostUri",
        "terminatePostUri",
        "rewindPostUri",
        "purgeHistoryDeleteUri",
        "restartPostUri",
        "suspendPostUri",
        "resumePostUri",
    ]
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        },
        "CheckStatusPayload": {
            "type": "object",
            "required": ["id", *payload_fields],
            "properties": {"id": {"type": "string"}}
            | {name: {"type": "string"} for name in payload_fields},
        },
        "Status": {
            "type": "object",
            "required": [
                "name",
                "instanceId",
                "runtimeStatus",
                "input",
                "customStatus",
                "output",
                "createdTime",
                "lastUpdatedTime",
            ],
            "properties": {
                "name": {"type": "string"},
                "instanceId": {"type": "string"},
                "runtimeStatus": {"enum": [s.value for s in OrchestrationRuntimeStatus]},
                "input": {},
                "customStatus": {},
                "output": {},
                "createdTime": nullable_time,
                "lastUpdatedTime": nullable_time,
                "historyEvents": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["EventType", "Timestamp"],
                        "properties": {
                            "EventType": {"type": "string"},
                            "Timestamp": {"type": "string", "format": "date-time"},
                        },
                    },
                },
            },
        },
        "PurgeResult": {
            "type": "object",
            "required": ["instancesDeleted"],
            "properties": {"instancesDeleted": {"type": "integer", "minimum": 0}},
        },
    }


def openapi_document() -> dict[str, Any]:
    """The management API as an OpenAPI 3.1 document (paths under the webhook prefix)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "durafn management API",
            "version": "1",
            "description": (
                "Durable Functions' HTTP API for orchestration instances. The same operations are "
                "served under /durabletask, where start inputs and event data are JSON-encoded "
                "twice. When the host enforces keys, pass the master or the system key as the "
                "x-functions-key header or the code query parameter."
            ),
        },
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "keyHeader": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "keyQuery": {"type": "apiKey", "in": "query", "name": "code"},
            },
        },
        # {}: no key at all, as on a loopback host that does not enforce keys
        "security": [{}, {"keyHeader": []}, {"keyQuery": []}],
    }


def openapi_route(authorize: Callable[[Request], Awaitable[None]]) -> Route:
    """The route serving the document, behind the management API's key check."""
    document = openapi_document()

    async def endpoint(request: Request) -> Response:
        try:
            await authorize(request)
        except DurafnError as exc:
            return await durafn_error(request, exc)
        return SafeJSONResponse(document)

    return Route(OPENAPI_PATH, endpoint, methods=["GET"], name="durafn:openapi")
