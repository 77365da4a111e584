"""The stored form of history events: every event type, every field filled or left None, comes
back equal from its JSON text, with times in UTC."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from durafn.models import FailureDetails, OrchestrationRuntimeStatus
from durafn.replay.history import EVENT_TYPES, HistoryEvent, decode_event, encode_event

WHEN = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=timezone(timedelta(hours=2)))


def sample(annotation: str, n: int) -> Any:
    """A value of the annotated type, different for each field."""
    if annotation.startswith("datetime"):
        return WHEN + timedelta(seconds=n)
    if annotation.startswith("FailureDetails"):
        return FailureDetails("ValueError", f"bad {n}", "Traceback ...", "act")
    if annotation.startswith("OrchestrationRuntimeStatus"):
        return OrchestrationRuntimeStatus.Completed
    if annotation.startswith("int"):
        return n
    return f'"text {n} \u00e9"'


def filled(cls: type[HistoryEvent], optional_as_none: bool) -> HistoryEvent:
    values: dict[str, Any] = {}
    for n, field in enumerate(fields(cls)):
        optional = "None" in str(field.type)
        values[field.name] = None if optional and optional_as_none else sample(str(field.type), n)
    return cls(**values)


@pytest.mark.parametrize("cls", [EVENT_TYPES[name] for name in sorted(EVENT_TYPES)])
@pytest.mark.parametrize("optional_as_none", [False, True])
def test_every_event_comes_back_equal(cls: type[HistoryEvent], optional_as_none: bool) -> None:
    event = filled(cls, optional_as_none)

    text = encode_event(event)

    assert decode_event(text) == event
    stored = json.loads(text)
    assert stored["type"] == cls.__name__
    assert stored["timestamp"] == "2026-03-04T03:06:07.890123Z"  # in UTC, Z-suffixed
