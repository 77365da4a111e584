"""The request and response types HTTP-triggered functions see, free of any web framework."""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import Enum
from typing import Any

from durafn.errors import BadRequestError


class AuthLevel(str, Enum):
    """Which key an HTTP trigger requires when keys are enforced (SPEC §5)."""

    ANONYMOUS = "anonymous"
    FUNCTION = "function"
    ADMIN = "admin"


class HttpRequest:
    """An incoming HTTP request as a function sees it."""

    def __init__(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        route_params: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> None:
        self.method = method.upper()
        self.url = url
        self.headers: dict[str, str] = {k.lower(): v for k, v in (headers or {}).items()}
        self.params: dict[str, str] = dict(params or {})
        self.route_params: dict[str, str] = dict(route_params or {})
        self._body = body

    def get_body(self) -> bytes:
        """The raw request body."""
        return self._body

    def get_json(self) -> Any:
        """The body parsed as JSON (None when empty); malformed JSON raises BadRequestError."""
        return parse_json_body(self._body)

    def __repr__(self) -> str:
        return f"<HttpRequest {self.method} {self.url}>"


class _NotJsonValueError(ValueError):
    """NaN or Infinity: Python's json reads them, JSON (RFC 8259) does not have them."""


def _refuse_constant(name: str) -> Any:
    raise _NotJsonValueError(name)


def parse_json_body(body: bytes | str) -> Any:
    """Parse a body as JSON (None when empty); BadRequestError says where it is malformed."""
    if not body.strip():
        return None
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise BadRequestError(f"the request body is not valid UTF-8: {exc}") from None
    except RecursionError:
        raise BadRequestError("the request body's JSON is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise BadRequestError(
            f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except _NotJsonValueError as exc:
        raise BadRequestError(
            f"the request body is not valid JSON: {exc} is not a JSON value"
        ) from None
    except ValueError:
        # the one other ValueError json.loads raises: an integer of more digits than Python
        # converts (sys.get_int_max_str_digits)
        raise BadRequestError(
            "the request body holds an integer with too many digits; send it as a string"
        ) from None


class HttpResponse:
    """The response a function returns: body (str or bytes), status code, headers, mimetype."""

    def __init__(
        self,
        body: str | bytes | None = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        mimetype: str | None = None,
        charset: str = "utf-8",
    ) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = dict(headers or {})
        self.mimetype = mimetype or "text/plain"
        self.charset = charset
        if isinstance(body, str):
            self._body = body.encode(charset)
        else:
            self._body = body or b""

    def get_body(self) -> bytes:
        """The response body as bytes."""
        return self._body

    @classmethod
    def json(
        cls, value: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
    ) -> HttpResponse:
        """A JSON response holding ``value``."""
        return cls(json.dumps(value), status_code, headers, mimetype="application/json")

    def __repr__(self) -> str:
        return f"<HttpResponse {self.status_code} {self.mimetype}>"
