"""JSON responses that render whatever the store holds."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse


class SafeJSONResponse(JSONResponse):
    r"""Starlette's JSONResponse, except that a string UTF-8 cannot encode (a lone surrogate, which
    a JSON ``\ud800`` escape can produce) is sent as an ASCII escape instead of failing with 500.
    """

    def render(self, content: Any) -> bytes:
        """UTF-8 JSON, or ASCII-escaped JSON when the content holds a lone surrogate."""
        try:
            return super().render(content)
        except UnicodeEncodeError:
            text = json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
            return text.encode("ascii")
