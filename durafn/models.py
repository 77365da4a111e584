"""Value types shared by the client, the store and the replay core."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from durafn.errors import BadRequestError, InvalidInstanceIdError


class OrchestrationRuntimeStatus(str, Enum):
    """The runtime status of an instance, named as in the Durable Functions HTTP API."""

    Pending = "Pending"
    Running = "Running"
    Completed = "Completed"
    ContinuedAsNew = "ContinuedAsNew"
    Failed = "Failed"
    Terminated = "Terminated"
    Suspended = "Suspended"

    @property
    def is_active(self) -> bool:
        """True while the instance may still make progress (Pending, Running, Suspended)."""
        return self in ACTIVE_STATUSES

    def __str__(self) -> str:
        return self.value


ACTIVE_STATUSES = frozenset(
    {
        OrchestrationRuntimeStatus.Pending,
        OrchestrationRuntimeStatus.Running,
        OrchestrationRuntimeStatus.Suspended,
    }
)
FINAL_STATUSES = frozenset(
    {
        OrchestrationRuntimeStatus.Completed,
        OrchestrationRuntimeStatus.Failed,
        OrchestrationRuntimeStatus.Terminated,
    }
)
"""Statuses that end an execution: the instance may be replaced or purged, takes no messages."""


@dataclass(frozen=True)
class FailureDetails:
    """What went wrong in failed work: the error's type name, message, traceback and function."""

    error_type: str
    message: str
    traceback: str = ""
    function: str = ""

    def to_json(self) -> dict[str, str]:
        """The object a Failed instance shows as its output."""
        return {
            "error": self.error_type,
            "message": self.message,
            "function": self.function,
            "traceback": self.traceback,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FailureDetails:
        """Rebuild from :meth:`to_json`'s shape."""
        return cls(
            error_type=str(data.get("error", "")),
            message=str(data.get("message", "")),
            traceback=str(data.get("traceback", "")),
            function=str(data.get("function", "")),
        )


def format_datetime(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix, the form the HTTP API uses."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    elif value.tzinfo is not timezone.utc:
        value = value.astimezone(timezone.utc)
    return value.isoformat(timespec="microseconds")[:-6] + "Z"


MAX_INSTANCE_ID_LENGTH = 256
# Control characters, and lone surrogates (not text: nothing holding one can be sent as UTF-8).
_CONTROL = "\x00-\x1f\x7f-\x9f\ud800-\udfff"
_FORBIDDEN_IN_ID = re.compile(f"[{_CONTROL}/\\\\#?]")
_FORBIDDEN_IN_NAME = re.compile(f"[{_CONTROL}]")


def validate_instance_id(instance_id: object) -> str:
    r"""Return ``instance_id`` if it is 1-256 characters without control characters or ``/ \\ # ?``.

    Anything else raises InvalidInstanceIdError, before anything is stored.
    """
    if not isinstance(instance_id, str):
        raise InvalidInstanceIdError(
            f"an instance id must be a string, not {type(instance_id).__name__}"
        )
    if not 1 <= len(instance_id) <= MAX_INSTANCE_ID_LENGTH:
        raise InvalidInstanceIdError(
            f"an instance id must be 1 to {MAX_INSTANCE_ID_LENGTH} characters long; "
            f"this one has {len(instance_id)}"
        )
    forbidden = _FORBIDDEN_IN_ID.search(instance_id)
    if forbidden:
        raise InvalidInstanceIdError(
            f"instance id {instance_id[:64]!r} holds {forbidden.group()!r}; ids may not contain "
            "control characters or any of / \\ # ?"
        )
    return instance_id


MAX_EVENT_NAME_LENGTH = 256


def validate_event_name(name: object) -> str:
    """Return ``name`` if it has 1-256 characters and no control character; else BadRequestError."""
    if not isinstance(name, str) or not name:
        raise BadRequestError("an event name must be a non-empty string")
    if len(name) > MAX_EVENT_NAME_LENGTH:
        raise BadRequestError(
            f"an event name must be at most {MAX_EVENT_NAME_LENGTH} characters long; "
            f"this one has {len(name)}"
        )
    forbidden = _FORBIDDEN_IN_NAME.search(name)
    if forbidden:
        raise BadRequestError(
            f"event name {name[:64]!r} holds {forbidden.group()!r}; event names may not contain "
            "control characters"
        )
    return name


@dataclass
class DurableOrchestrationStatus:
    """The status of one orchestration instance, as ``client.get_status`` returns it."""

    name: str
    instance_id: str
    runtime_status: OrchestrationRuntimeStatus
    input_: Any = None
    output: Any = None
    custom_status: Any = None
    created_time: datetime | None = None
    last_updated_time: datetime | None = None
    history: list[dict[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        """The status object of the Durable Functions HTTP API (camelCase field names)."""
        body: dict[str, Any] = {
            "name": self.name,
            "instanceId": self.instance_id,
            "runtimeStatus": self.runtime_status.value,
            "input": self.input_,
            "customStatus": self.custom_status,
            "output": self.output,
            "createdTime": format_datetime(self.created_time) if self.created_time else None,
            "lastUpdatedTime": (
                format_datetime(self.last_updated_time) if self.last_updated_time else None
            ),
        }
        if self.history is not None:
            body["historyEvents"] = self.history
        return body


@dataclass(frozen=True)
class RetryOptions:
    """How a failed activity or sub-orchestration is retried.

    ``max_number_of_attempts`` counts every attempt, the first included. The wait before retry n
    (n >= 1) is ``first_retry_interval * backoff_coefficient ** (n - 1)``, capped by
    ``max_retry_interval_in_milliseconds``; no retry starts after ``retry_timeout_in_milliseconds``
    has passed since the first attempt was scheduled.
    """

    first_retry_interval_in_milliseconds: int
    max_number_of_attempts: int
    backoff_coefficient: float = 1.0
    max_retry_interval_in_milliseconds: int | None = None
    retry_timeout_in_milliseconds: int | None = None

    def __post_init__(self) -> None:
        if self.first_retry_interval_in_milliseconds <= 0:
            raise ValueError("first_retry_interval_in_milliseconds must be greater than 0")
        if self.max_number_of_attempts < 1:
            raise ValueError("max_number_of_attempts must be at least 1 (it counts the first)")
        if self.backoff_coefficient < 1.0:
            raise ValueError("backoff_coefficient must be at least 1.0")


@dataclass(frozen=True)
class EntityId:
    """Identifies a durable entity: its entity function's name and a key."""

    name: str
    key: str

    def __str__(self) -> str:
        return f"@{self.name.lower()}@{self.key}"


@dataclass(frozen=True)
class InstanceQuery:
    """A filter over instances for queries and purges; ``None`` means no constraint."""

    runtime_status: frozenset[OrchestrationRuntimeStatus] | None = None
    created_time_from: datetime | None = None
    created_time_to: datetime | None = None
    instance_id_prefix: str | None = None
    top: int | None = None
    continuation_token: str | None = None
