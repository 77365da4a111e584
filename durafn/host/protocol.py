"""The HTTP protocol ``durafn start`` serves: uvicorn's own, except that a request its parser
refuses (not HTTP, broken headers, conflicting lengths) gets durafn's JSON error body, as every
other bad request does (SPEC §9), instead of uvicorn's plain text.
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.h11_impl import H11Protocol


def _refuse(transport: asyncio.Transport, reason: str) -> None:
    """Answer 400 with ``{"error": ...}`` and close: the connection's bytes cannot be trusted."""
    error = (
        f"the request is not valid HTTP/1.1 ({reason.rstrip('.')}); check its request line, "
        "headers and Content-Length"
    )
    body = json.dumps({"error": error}).encode()
    head = (
        b"HTTP/1.1 400 Bad Request\r\n"
        b"content-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode("ascii") + b"\r\n"
        b"connection: close\r\n\r\n"
    )
    transport.write(head + body)
    transport.close()


class JsonErrorsH11Protocol(H11Protocol):
    """uvicorn's pure-Python HTTP protocol, refusing malformed requests with a JSON body."""

    def send_400_response(self, msg: str) -> None:
        """Answer the request the parser refused."""
        _refuse(self.transport, msg)


HTTP_PROTOCOL: type[asyncio.Protocol] = JsonErrorsH11Protocol
"""The protocol class to give uvicorn: on httptools, the C parser, where it is installed."""

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is a dependency, but uvicorn runs without it too
    pass
else:

    class JsonErrorsHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol, refusing malformed requests with a JSON body."""

        def send_400_response(self, msg: str) -> None:
            """Answer the request the parser refused."""
            _refuse(self.transport, msg)

    HTTP_PROTOCOL = JsonErrorsHttpToolsProtocol
