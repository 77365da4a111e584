"""The management API under /runtime/webhooks/durabletask (and /durabletask for SDK clients).

Status codes and bodies follow Azure Durable Functions' HTTP API. Under /durabletask, start
inputs and event data arrive JSON-encoded twice (the out-of-process SDK convention) and are
decoded twice; the few other ways that prefix serves Azure's Python SDK are listed on
ManagementApi (``sdk_conventions``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from durafn.client import DurableOrchestrationClient
from durafn.errors import (
    BadRequestError,
    DurafnError,
    FunctionNotFoundError,
    InstanceNotFoundError,
    InvalidInstanceStateError,
    UnauthorizedError,
)
from durafn.host.errors import durafn_error, error_response, unexpected_error
from durafn.host.responses import SafeJSONResponse
from durafn.host.triggers import ClientFactory, read_body, to_response
from durafn.http import parse_json_body
from durafn.management import WEBHOOK_PREFIX, check_status_response
from durafn.models import InstanceQuery, OrchestrationRuntimeStatus

SDK_PREFIX = "/durabletask"
CONTINUATION_HEADER = "x-ms-continuation-token"
MAX_TOP = 1000

_FRACTION = re.compile(r"\.(\d+)")
_TOP = re.compile(r"[0-9]{1,9}")
# control characters but tab, newline and carriage return, which a reason may hold
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SHORT_YEAR = re.compile(r"^(\d{1,3})-")

# Azure's status names that no durafn instance ever holds (Canceled is obsolete there): a
# runtimeStatus filter may name them, as Azure's Python SDK lets users do, and they match nothing.
NEVER_HELD_STATUSES = frozenset({"Canceled"})

ManagementAuthorizer = Callable[[Request], Awaitable[None]]
Endpoint = Callable[[Request], Awaitable[Response]]


def parse_bool(params: dict[str, str] | Any, name: str, default: bool) -> bool:
    """A boolean query parameter (true/false/1/0); BadRequestError for anything else."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    lowered = str(raw).lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise BadRequestError(f"query parameter {name} must be true or false, not {raw!r}")


def parse_datetime(name: str, raw: str) -> datetime:
    """An ISO 8601 time (``Z`` or an offset; none means UTC; any fraction of a second)."""
    text = raw.strip().replace("Z", "+00:00").replace("z", "+00:00")
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
    # Python's strftime writes years before 1000 unpadded on Linux ("1-01-01T..." for
    # datetime.min), and Azure's Python SDK formats its date filters with it; pad, as Azure does.
    text = _SHORT_YEAR.sub(lambda m: m.group(1).zfill(4) + "-", text, count=1)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequestError(
            f"query parameter {name} must be an ISO 8601 time such as 2026-01-31T12:00:00Z, "
            f"not {raw!r}"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise BadRequestError(
            f"query parameter {name} is {raw!r}, which is out of range in UTC"
        ) from None


def parse_query(params: Any, token: str | None) -> InstanceQuery:
    """The instance filter of ``GET/DELETE /instances``; BadRequestError names a bad value."""
    statuses = None
    raw_status = params.get("runtimeStatus")
    if raw_status:
        statuses = set()
        for item in raw_status.split(","):
            if item.strip() in NEVER_HELD_STATUSES:
                continue
            try:
                statuses.add(OrchestrationRuntimeStatus(item.strip()))
            except ValueError:
                allowed = ", ".join(s.value for s in OrchestrationRuntimeStatus)
                raise BadRequestError(
                    f"runtimeStatus {item.strip()!r} is not one of {allowed}"
                ) from None
    top = None
    raw_top = params.get("top")
    if raw_top:
        # [0-9] and a length cap: str.isdigit() passes "²", which int() refuses, and int()
        # refuses thousands of digits too, both with a ValueError
        if not _TOP.fullmatch(raw_top) or not 1 <= int(raw_top) <= MAX_TOP:
            raise BadRequestError(
                f"top must be a whole number from 1 to {MAX_TOP}, not {raw_top!r}"
            )
        top = int(raw_top)
    created_from = params.get("createdTimeFrom")
    created_to = params.get("createdTimeTo")
    return InstanceQuery(
        # an empty set (only never-held statuses named) matches nothing, unlike None
        runtime_status=frozenset(statuses) if statuses is not None else None,
        created_time_from=parse_datetime("createdTimeFrom", created_from) if created_from else None,
        created_time_to=parse_datetime("createdTimeTo", created_to) if created_to else None,
        instance_id_prefix=params.get("instanceIdPrefix") or None,
        top=top,
        continuation_token=token or None,
    )


def parse_reason(request: Request) -> str | None:
    """The ``reason`` query parameter; control characters (a NUL above all) are refused."""
    reason = request.query_params.get("reason")
    if reason is not None and _CONTROL.search(reason):
        raise BadRequestError("query parameter reason may not hold control characters")
    return reason


def sdk_error(exc: DurafnError) -> Response:
    """A durafn error as Azure's SDK clients read it: the message also as ``ExceptionMessage``
    (the field of the Azure host's error bodies that the Python SDK's start_new raises with),
    and an unknown orchestrator as 400, the Azure host's code, on which start_new switches.
    """
    status_code = 400 if isinstance(exc, FunctionNotFoundError) else exc.status_code
    message = str(exc)
    body = {"error": message, "Message": message, "ExceptionMessage": message}
    return SafeJSONResponse(body, status_code=status_code)


@dataclass(frozen=True)
class ManagementApi:
    """The handlers of the management API, sharing a client factory and a body limit.

    ``sdk_conventions`` marks the /durabletask prefix, where Azure's out-of-process SDK clients
    call: start inputs and event data arrive JSON-encoded twice, a status with history also
    carries it as ``history`` (the Python SDK's field), queries show inputs by default (the SDK
    cannot ask), restart answers the new id, and errors carry ``ExceptionMessage`` (see sdk_error).
    """

    client: ClientFactory
    authorize: ManagementAuthorizer
    body_limit: int
    sdk_conventions: bool

    async def _payload(self, request: Request) -> Any:
        body = await read_body(request, self.body_limit)
        value = parse_json_body(body)
        if self.sdk_conventions and isinstance(value, str):
            value = parse_json_body(value)
        return value

    def _client(self, request: Request) -> DurableOrchestrationClient:
        return self.client().with_base_url(str(request.base_url))

    async def start(self, request: Request) -> Response:
        """POST /orchestrators/{functionName}[/{instanceId}]: 202 and the check-status payload."""
        client = self._client(request)
        payload = await self._payload(request)
        instance_id = await client.start_new(
            request.path_params["functionName"], request.path_params.get("instanceId"), payload
        )
        return to_response(
            check_status_response(client.create_http_management_payload(instance_id))
        )

    async def status(self, request: Request) -> Response:
        """GET /instances/{id}: 202 while active, 200 when finished, 404 when unknown."""
        params = request.query_params
        instance_id = request.path_params["instanceId"]
        status = await self._client(request).get_status(
            instance_id,
            show_history=parse_bool(params, "showHistory", False),
            show_history_output=parse_bool(params, "showHistoryOutput", False),
            show_input=parse_bool(params, "showInput", True),
        )
        if status is None:
            raise InstanceNotFoundError(instance_id)
        code = 202 if status.runtime_status.is_active else 200
        body = status.to_json()
        if self.sdk_conventions and "historyEvents" in body:
            # Azure names the list historyEvents, but the Python SDK's status reads `history`
            # (so on Azure its .history stays None); send both and either spelling works.
            body["history"] = body["historyEvents"]
        return SafeJSONResponse(body, status_code=code)

    async def list_instances(self, request: Request) -> Response:
        """GET /instances: one page; the next page's token in x-ms-continuation-token."""
        params = request.query_params
        query = parse_query(params, request.headers.get(CONTINUATION_HEADER))
        # Azure's own default is true; the Python SDK's get_status_all/get_status_by never send
        # showInput, so there it must be true for their statuses to carry inputs.
        show_input = parse_bool(params, "showInput", self.sdk_conventions)
        page = await self._client(request).query(query, show_input=show_input)
        headers = {CONTINUATION_HEADER: page.continuation_token} if page.continuation_token else {}
        return SafeJSONResponse([s.to_json() for s in page.statuses], headers=headers)

    async def raise_event(self, request: Request) -> Response:
        """POST /instances/{id}/raiseEvent/{eventName}: 202; 404 unknown; 410 finished."""
        data = await self._payload(request)
        await self._client(request).raise_event(
            request.path_params["instanceId"], request.path_params["eventName"], data
        )
        return Response(status_code=202)

    async def act(self, request: Request) -> Response:
        """POST /instances/{id}/terminate|suspend|resume|rewind|restart: 202; 404; 410."""
        client = self._client(request)
        instance_id = request.path_params["instanceId"]
        action = request.path_params["action"]
        reason = parse_reason(request)
        await read_body(request, self.body_limit)
        if action == "terminate":
            await client.terminate(instance_id, reason)
        elif action == "suspend":
            await client.suspend(instance_id, reason)
        elif action == "resume":
            await client.resume(instance_id, reason)
        elif action == "rewind":
            await client.rewind(instance_id, reason)
        elif action == "restart":
            new_id = parse_bool(request.query_params, "restartWithNewInstanceId", True)
            restarted = await client.restart(instance_id, new_id)
            if self.sdk_conventions:
                # the Python SDK's restart returns the response body as the new instance id
                return SafeJSONResponse(restarted, status_code=202)
            return to_response(
                check_status_response(client.create_http_management_payload(restarted))
            )
        else:
            return error_response(404, f"unknown instance action '{action}'")
        return Response(status_code=202)

    async def purge(self, request: Request) -> Response:
        """DELETE /instances/{id}: 200 {instancesDeleted}; 404 unknown; 409 while active."""
        try:
            result = await self._client(request).purge_instance_history(
                request.path_params["instanceId"]
            )
        except InvalidInstanceStateError as exc:
            return error_response(409, str(exc))
        return SafeJSONResponse({"instancesDeleted": result.instances_deleted})

    async def purge_by(self, request: Request) -> Response:
        """DELETE /instances?filters: 200 {instancesDeleted}; finished instances only."""
        query = parse_query(request.query_params, None)
        if query.runtime_status == frozenset():
            # only never-held statuses named: nothing matches (an empty list would mean "any")
            return SafeJSONResponse({"instancesDeleted": 0})
        client = self._client(request)
        result = await client.purge_instance_history_by(
            query.created_time_from,
            query.created_time_to,
            list(query.runtime_status) if query.runtime_status else None,
        )
        return SafeJSONResponse({"instancesDeleted": result.instances_deleted})

    def guarded(
        self, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """``handler`` behind the management key check, with errors answered as JSON."""

        async def endpoint(request: Request) -> Response:
            try:
                await self.authorize(request)
                return await handler(request)
            except DurafnError as exc:
                if self.sdk_conventions and not isinstance(exc, UnauthorizedError):
                    return sdk_error(exc)
                return await durafn_error(request, exc)
            except RecursionError:
                # only hostile nesting gets this deep (e.g. a crafted continuation token); the
                # parsers that know refuse it with their own 400 first
                return error_response(400, "the request holds a value nested too deeply")
            except Exception as exc:
                return unexpected_error(request, exc)

        return endpoint

    def routes(self, prefix: str) -> list[BaseRoute]:
        """The API's routes under ``prefix``."""
        g = self.guarded
        return [
            Route(f"{prefix}/orchestrators/{{functionName}}", g(self.start), methods=["POST"]),
            Route(
                f"{prefix}/orchestrators/{{functionName}}/{{instanceId}}",
                g(self.start),
                methods=["POST"],
            ),
            Route(
                f"{prefix}/instances",
                by_method(GET=g(self.list_instances), DELETE=g(self.purge_by)),
                methods=["GET", "DELETE"],
            ),
            Route(
                f"{prefix}/instances/{{instanceId}}",
                by_method(GET=g(self.status), DELETE=g(self.purge)),
                methods=["GET", "DELETE"],
            ),
            Route(
                f"{prefix}/instances/{{instanceId}}/raiseEvent/{{eventName}}",
                g(self.raise_event),
                methods=["POST"],
            ),
            Route(f"{prefix}/instances/{{instanceId}}/{{action}}", g(self.act), methods=["POST"]),
        ]


def by_method(**handlers: Endpoint) -> Endpoint:
    """One endpoint for a path served by several handlers, one per method: one Route per path
    is what makes a 405's Allow header list every method of the path.
    """

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return endpoint


def management_routes(
    client: ClientFactory, authorize: ManagementAuthorizer, body_limit: int
) -> list[BaseRoute]:
    """The management API under the Azure webhook prefix and the SDK prefix."""
    routes: list[BaseRoute] = []
    routes += ManagementApi(client, authorize, body_limit, sdk_conventions=False).routes(
        WEBHOOK_PREFIX
    )
    routes += ManagementApi(client, authorize, body_limit, sdk_conventions=True).routes(SDK_PREFIX)
    return routes
