"""The JSON codec for inputs, outputs, event data and custom status.

Encoding follows the value: JSON types as they are; dataclasses as their fields; pydantic
models as ``model_dump(mode="json")``; objects whose class has ``to_json`` as what it returns.
Decoding follows the annotation the receiving function declares (:func:`decode_as`). Anything else
is a SerializationError at the call site, before anything is stored.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from durafn.errors import SerializationError

COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))
"""Encodes JSON without spaces; one instance, as building an encoder per call costs more than
a small value's encoding."""
MAX_DEPTH = 64
"""Nesting beyond this is refused: it is almost always a cycle or hostile input."""


def to_jsonable(value: Any, what: str, _depth: int = 0) -> Any:
    """``value`` as plain JSON types; ``what`` names it in errors (e.g. "input of 'f'")."""
    if _depth > MAX_DEPTH:
        raise SerializationError(f"{what} is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        _check_text(value, what)
        return value
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SerializationError(f"{what} holds {value!r}, which JSON cannot represent")
        return value
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item, what, _depth + 1) for item in value]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise SerializationError(
                    f"{what} has a dict key {key!r} of type {type(key).__name__}; JSON keys "
                    "must be strings"
                )
            _check_text(key, what)
            out[key] = to_jsonable(item, what, _depth + 1)
        return out
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return to_jsonable(fields, what, _depth + 1)
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return to_jsonable(model_dump(mode="json"), what, _depth + 1)
    to_json = getattr(type(value), "to_json", None)
    if callable(to_json):
        return to_jsonable(to_json(value), what, _depth + 1)
    raise SerializationError(
        f"{what} is a {type(value).__name__}, which durafn cannot store as JSON; pass JSON types, "
        "a dataclass, a pydantic model, or an object whose class defines to_json/from_json"
    )


def _check_text(text: str, what: str) -> None:
    # A lone surrogate (from a "\ud800" JSON escape or surrogateescape'd bytes) is not Unicode
    # text: stored, it would make every response that shows it fail to encode.
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SerializationError(
            f"{what} holds a string with a lone surrogate {text[exc.start]!r} at position "
            f"{exc.start}, which is not valid Unicode; send text as valid UTF-8"
        ) from None


def encode(value: Any, what: str) -> str | None:
    """``value`` as compact JSON text (None stays None); SerializationError if it cannot be."""
    if value is None:
        return None
    return COMPACT_JSON.encode(to_jsonable(value, what))


def decode(text: str | None) -> Any:
    """JSON text back to plain JSON types (None stays None)."""
    return None if text is None else json.loads(text)


def decode_as(value: Any, annotation: Any) -> Any:
    """Turn plain JSON ``value`` into ``annotation`` when it is a dataclass, a pydantic model or a
    class with ``from_json``; otherwise return ``value`` unchanged.
    """
    # values here come from JSON, so only classes that convert from JSON are worth a look
    if value is None or not isinstance(annotation, type) or annotation is Any:
        return value
    if dataclasses.is_dataclass(annotation) and isinstance(value, dict):
        return annotation(**value)
    model_validate = getattr(annotation, "model_validate", None)
    if callable(model_validate):
        return model_validate(value)
    from_json = getattr(annotation, "from_json", None)
    if callable(from_json):
        return from_json(value)
    return value
