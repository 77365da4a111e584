"""History events: the durable record of an orchestration, as frozen dataclasses.

Payloads (inputs, results, event data) are kept as JSON text, exactly as stored, so history moves
between the store and the executor without being decoded and encoded again. ``task_id`` links a
scheduling event (TaskScheduled, TimerCreated, SubOrchestrationInstanceCreated) with its outcome.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from operator import attrgetter
from typing import Any

from durafn.models import FailureDetails, OrchestrationRuntimeStatus, format_datetime
from durafn.serialization import COMPACT_JSON


@dataclass(frozen=True, kw_only=True, slots=True)
class HistoryEvent:
    """Base of all history events; ``timestamp`` is when the event was recorded (UTC)."""

    timestamp: datetime

    @property
    def event_type(self) -> str:
        """The Durable Task name of the event, e.g. ``TaskScheduled``."""
        return type(self).__name__


@dataclass(frozen=True, kw_only=True, slots=True)
class OrchestratorStarted(HistoryEvent):
    """Opens each orchestration step; its timestamp is ``current_utc_datetime`` for the step."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecutionStarted(HistoryEvent):
    """The instance (or a continue-as-new generation of it) started with this input."""

    name: str
    input: str | None = None
    execution_id: str = ""
    parent_instance_id: str | None = None
    parent_task_id: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskScheduled(HistoryEvent):
    """The orchestrator scheduled activity ``name`` as task ``task_id``."""

    task_id: int
    name: str
    input: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskCompleted(HistoryEvent):
    """Activity task ``task_id`` returned ``result`` (JSON text)."""

    task_id: int
    result: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskFailed(HistoryEvent):
    """Activity task ``task_id`` raised; ``failure`` describes the error."""

    task_id: int
    failure: FailureDetails


@dataclass(frozen=True, kw_only=True, slots=True)
class TimerCreated(HistoryEvent):
    """The orchestrator created durable timer ``task_id`` that fires at ``fire_at``."""

    task_id: int
    fire_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class TimerFired(HistoryEvent):
    """Durable timer ``task_id`` fired."""

    task_id: int
    fire_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class EventRaised(HistoryEvent):
    """An external event ``name`` with data ``input`` (JSON text) reached the instance."""

    name: str
    input: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SubOrchestrationInstanceCreated(HistoryEvent):
    """The orchestrator started sub-orchestration ``name`` as instance ``instance_id``."""

    task_id: int
    name: str
    instance_id: str
    input: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SubOrchestrationInstanceCompleted(HistoryEvent):
    """Sub-orchestration task ``task_id`` completed with ``result`` (JSON text)."""

    task_id: int
    result: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SubOrchestrationInstanceFailed(HistoryEvent):
    """Sub-orchestration task ``task_id`` failed."""

    task_id: int
    failure: FailureDetails


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecutionSuspended(HistoryEvent):
    """The instance was suspended; it processes nothing but resume and terminate until resumed."""

    reason: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecutionResumed(HistoryEvent):
    """A suspended instance was resumed."""

    reason: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecutionTerminated(HistoryEvent):
    """The instance was terminated from outside; ``reason`` becomes its output."""

    reason: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecutionCompleted(HistoryEvent):
    """The orchestrator finished: Completed with ``result`` or Failed with ``failure``."""

    status: OrchestrationRuntimeStatus
    result: str | None = None
    failure: FailureDetails | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ContinueAsNew(HistoryEvent):
    """The orchestrator called ``continue_as_new``; a fresh history starts with ``input``."""

    input: str | None = None


EVENT_TYPES: dict[str, type[HistoryEvent]] = {
    cls.__name__: cls
    for cls in (
        OrchestratorStarted,
        ExecutionStarted,
        TaskScheduled,
        TaskCompleted,
        TaskFailed,
        TimerCreated,
        TimerFired,
        EventRaised,
        SubOrchestrationInstanceCreated,
        SubOrchestrationInstanceCompleted,
        SubOrchestrationInstanceFailed,
        ExecutionSuspended,
        ExecutionResumed,
        ExecutionTerminated,
        ExecutionCompleted,
        ContinueAsNew,
    )
}

_DATETIME_FIELDS = frozenset({"timestamp", "fire_at"})


def _json_ready(annotation: str) -> Callable[[Any], Any] | None:
    """How a field annotated ``annotation`` is made JSON-ready (None: it already is)."""
    if annotation.startswith("datetime"):
        return format_datetime
    if annotation.startswith("FailureDetails"):
        return FailureDetails.to_json
    if annotation.startswith("OrchestrationRuntimeStatus"):
        return attrgetter("value")
    return None


# Worked out once per event type: every step encodes several events.
_ENCODED_FIELDS = {
    cls: tuple((f.name, _json_ready(str(f.type))) for f in fields(cls))
    for cls in EVENT_TYPES.values()
}


def event_to_dict(event: HistoryEvent) -> dict[str, Any]:
    """A JSON-ready dict of the event with its type under ``"type"``; inverse of event_from_dict."""
    data: dict[str, Any] = {"type": event.event_type}
    for name, json_ready in _ENCODED_FIELDS[type(event)]:
        value = getattr(event, name)
        data[name] = value if json_ready is None or value is None else json_ready(value)
    return data


def event_from_dict(data: dict[str, Any]) -> HistoryEvent:
    """Rebuild an event from :func:`event_to_dict`'s output."""
    values = dict(data)
    cls = EVENT_TYPES[values.pop("type")]
    for name in _DATETIME_FIELDS & values.keys():
        values[name] = datetime.fromisoformat(values[name].replace("Z", "+00:00"))
    if isinstance(values.get("failure"), dict):
        values["failure"] = FailureDetails.from_json(values["failure"])
    if "status" in values:
        values["status"] = OrchestrationRuntimeStatus(values["status"])
    return cls(**values)


def encode_event(event: HistoryEvent) -> str:
    """The event as compact JSON text, for storage."""
    return COMPACT_JSON.encode(event_to_dict(event))


def decode_event(text: str) -> HistoryEvent:
    """Inverse of :func:`encode_event`."""
    return event_from_dict(json.loads(text))
