"""One place where errors become HTTP answers: durafn's errors get their status and a JSON body."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from durafn.errors import DurafnError, UnauthorizedError
from durafn.host.responses import SafeJSONResponse

log = logging.getLogger("durafn.host")


def error_response(
    status_code: int, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """``{"error": message}`` with ``status_code``."""
    return SafeJSONResponse({"error": message}, status_code=status_code, headers=headers)


async def durafn_error(request: Request, exc: Exception) -> Response:
    """A DurafnError escaping a handler: its own status code, its message as the error."""
    assert isinstance(exc, DurafnError)
    if isinstance(exc, UnauthorizedError):
        # no detail: a caller without the key learns nothing about what exists
        return Response(status_code=401)
    return error_response(exc.status_code, str(exc))


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 and friends, as JSON (405 keeps its Allow header)."""
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail, exc.headers)


def unexpected_error(request: Request, exc: Exception) -> Response:
    """Anything else is a bug in user code or in durafn: log it, answer 500 without internals."""
    log.error("unhandled error serving %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, f"the function raised {type(exc).__name__}; see the host's log")


EXCEPTION_HANDLERS = {DurafnError: durafn_error, HTTPException: http_error}
