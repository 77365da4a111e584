"""HTTP triggers under /api: starlette Request <-> df.HttpRequest, the client injected, any return
value turned into a response.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from durafn.client import DurableOrchestrationClient
from durafn.errors import DurafnError, PayloadTooLargeError
from durafn.functions import FunctionKind, FunctionSpec, RouteParam, parse_route_params
from durafn.host.errors import durafn_error, unexpected_error
from durafn.host.responses import SafeJSONResponse
from durafn.http import HttpRequest, HttpResponse

API_PREFIX = "/api"
_PARAM = re.compile(r"\{[^{}]*\}")
_WHOLE_SEGMENT = re.compile(r"^\{[^{}]*\}$")


class DigitsConvertor(Convertor[str]):
    """Starlette's ``int`` convertor without its ``int()``: a segment of thousands of digits made
    that raise ValueError while routing (a 500). Functions get route values as strings anyway.
    """

    regex = "[0-9]+"

    def convert(self, value: str) -> str:
        """The segment as it is."""
        return value

    def to_string(self, value: str) -> str:
        """The segment as it is."""
        return value


register_url_convertor("durafn_digits", DigitsConvertor())

_CONVERTORS = {
    "int": "durafn_digits",
    "long": "durafn_digits",
    "float": "float",
    "double": "float",
    "decimal": "float",
    "guid": "uuid",
}

ClientFactory = Callable[[], DurableOrchestrationClient]
Authorizer = Callable[[Request, FunctionSpec], Awaitable[None]]


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) one larger than ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    # isascii: str.isdigit() passes digits such as "²" that int() refuses
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"the request body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"the request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def to_http_request(request: Request, limit: int) -> HttpRequest:
    """The user-facing request for a starlette request (route values as strings, as in Azure)."""
    return HttpRequest(
        request.method,
        str(request.url),
        headers=dict(request.headers),
        params=dict(request.query_params),
        route_params={k: str(v) for k, v in request.path_params.items()},
        body=await read_body(request, limit),
    )


def _starlette_param(param: RouteParam) -> str:
    convertor = "path" if param.catch_all else _CONVERTORS.get(param.constraint or "", "")
    return f"{{{param.name}:{convertor}}}" if convertor else f"{{{param.name}}}"


def starlette_paths(route: str) -> list[str]:
    """Starlette paths for an Azure route template (an optional ``{x?}`` yields two)."""
    paths = [""]
    for segment in route.strip("/").split("/"):
        params = parse_route_params(segment)
        if len(params) == 1 and _WHOLE_SEGMENT.match(segment):
            piece = _starlette_param(params[0])
            with_segment = [f"{p}/{piece}" for p in paths]
            paths = with_segment + paths if params[0].optional else with_segment
            continue
        for param in params:
            piece = _starlette_param(param)
            segment = _PARAM.sub(lambda _: piece, segment, count=1)  # noqa: B023 (used at once)
        literal = segment
        paths = [f"{p}/{literal}" for p in paths]
    return [API_PREFIX + (p or "/") for p in paths]


def to_response(result: Any) -> Response:
    """Whatever a handler returned as a starlette response (str: text, dict/list: JSON)."""
    if isinstance(result, Response):
        return result
    if isinstance(result, HttpResponse):
        media = result.mimetype
        if media.startswith("text/") or media == "application/json":
            media = f"{media}; charset={result.charset}"
        return Response(result.get_body(), result.status_code, result.headers, media_type=media)
    if result is None:
        return Response(status_code=204)
    if isinstance(result, (dict, list)):
        return SafeJSONResponse(result)
    if isinstance(result, bytes):
        return Response(result, media_type="application/octet-stream")
    if isinstance(result, str):
        return PlainTextResponse(result)
    return Response(json.dumps(result), media_type="application/json")


def _request_parameter(spec: FunctionSpec) -> str | None:
    names = [n for n in inspect.signature(spec.fn).parameters if n != spec.client_name]
    if spec.trigger_arg_name and spec.trigger_arg_name in names:
        return spec.trigger_arg_name
    return names[0] if names else None


def trigger_endpoint(
    spec: FunctionSpec, client: ClientFactory, authorize: Authorizer, body_limit: int
) -> Callable[[Request], Awaitable[Response]]:
    """The starlette endpoint that runs one HTTP-triggered function."""
    request_param = _request_parameter(spec)
    is_async = inspect.iscoroutinefunction(spec.fn)

    async def endpoint(request: Request) -> Response:
        try:
            await authorize(request, spec)
            req = await to_http_request(request, body_limit)
            kwargs: dict[str, Any] = {}
            if request_param is not None:
                kwargs[request_param] = req
            if spec.client_name is not None:
                kwargs[spec.client_name] = client().for_request(req)
            if is_async:
                result = await spec.fn(**kwargs)
            else:
                result = await run_in_threadpool(spec.fn, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
            return to_response(result)
        except DurafnError as exc:
            return await durafn_error(request, exc)
        except Exception as exc:
            return unexpected_error(request, exc)

    return endpoint


def trigger_routes(
    specs: list[FunctionSpec], client: ClientFactory, authorize: Authorizer, body_limit: int
) -> list[BaseRoute]:
    """One starlette route per path of every HTTP-triggered function."""
    routes: list[BaseRoute] = []
    for spec in specs:
        if spec.kind is not FunctionKind.HTTP:
            continue
        endpoint = trigger_endpoint(spec, client, authorize, body_limit)
        for path in starlette_paths(spec.display_route):
            routes.append(
                Route(path, endpoint, methods=list(spec.methods), name=f"{spec.name}:{path}")
            )
    return routes
