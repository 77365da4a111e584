"""Every exception durafn raises on purpose.

DurafnError                      base; ``status_code`` is the HTTP status it maps to
├── AppLoadError                 function_app.py missing, failing to import, or holding no App
├── AppValidationError           the App's bindings are inconsistent (lists every issue)
├── FunctionNotFoundError        404: no orchestrator/activity/entity of that name
├── InstanceExistsError          409: the instance id is Pending, Running or Suspended
├── InstanceNotFoundError        404: no instance with that id
├── InvalidInstanceStateError    410: the instance's state forbids the action
├── BadRequestError              400: malformed input (JSON, ids, query values)
│   ├── InvalidInstanceIdError
│   └── SerializationError       a value that cannot be stored as JSON
├── PayloadTooLargeError         413: body over the configured limit
├── UnauthorizedError            401: missing or wrong key
├── OrchestrationTimeoutError    wait_for_completion ran out of time
├── StoreSchemaError             the database schema is not one this version understands
├── StoreLockedError             another host already serves this SQLite store
├── KeysFileError                .durafn/keys.json cannot be read or lacks a key
├── ScaffoldError                durafn init/new refused: a name or file that exists, a bad name
├── HostRequestError             durafn instances: the host refused the call or is not reachable
├── TaskFailedError              raised in an orchestrator when awaited work failed
└── NonDeterminismError          replay of the orchestrator disagrees with its recorded history
"""

from __future__ import annotations

from typing import ClassVar


class DurafnError(Exception):
    """Base class of durafn's errors; ``status_code`` is the HTTP status it is answered with."""

    status_code: ClassVar[int] = 500


class AppLoadError(DurafnError):
    """The function app could not be loaded (file missing, import failed, no App inside)."""


class AppValidationError(DurafnError):
    """The App's function bindings are inconsistent; ``issues`` lists every problem found."""

    def __init__(self, issues: list[str]) -> None:
        self.issues = list(issues)
        lines = "\n".join(f"  - {issue}" for issue in self.issues)
        super().__init__(f"the function app has {len(self.issues)} problem(s):\n{lines}")


_KIND_WORDS = {
    "http": ("HTTP function", "HTTP functions", "route"),
    "activity": ("activity", "activities", "activity"),
}
"""A function kind's name, plural and decorator, where they are not the kind, +s and the kind."""


class FunctionNotFoundError(DurafnError):
    """No function of that kind and name is registered in the app."""

    status_code: ClassVar[int] = 404

    def __init__(self, kind: str, name: str, known: list[str] | None = None) -> None:
        self.kind = kind
        self.name = name
        noun, nouns, decorator = _KIND_WORDS.get(kind, (kind, f"{kind}s", kind))
        hint = f" Known {nouns}: {', '.join(sorted(known))}." if known else ""
        super().__init__(
            f"no {noun} named '{name}' is registered in the function app; check the name or "
            f"add @app.{decorator} to the function.{hint}"
        )


class InstanceExistsError(DurafnError):
    """An instance with that id is Pending, Running or Suspended, so it cannot be started again."""

    status_code: ClassVar[int] = 409

    def __init__(self, instance_id: str, status: str) -> None:
        self.instance_id = instance_id
        self.status = status
        super().__init__(
            f"An instance with ID '{instance_id}' already exists and is {status}; wait for it to "
            "finish, terminate it, or start with another id."
        )


class InstanceNotFoundError(DurafnError):
    """No orchestration instance with that id exists in the store."""

    status_code: ClassVar[int] = 404

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        super().__init__(f"No instance with ID '{instance_id}' was found.")


class InvalidInstanceStateError(DurafnError):
    """The instance exists but its runtime status forbids the requested action."""

    status_code: ClassVar[int] = 410

    def __init__(self, instance_id: str, status: str, action: str) -> None:
        self.instance_id = instance_id
        self.status = status
        self.action = action
        super().__init__(f"Cannot {action} instance '{instance_id}': it is {status}.")


class BadRequestError(DurafnError):
    """The request or argument is malformed; the message says which part and why."""

    status_code: ClassVar[int] = 400


class InvalidInstanceIdError(BadRequestError, ValueError):
    r"""An instance id that is empty, too long, or holds control characters or ``/ \\ # ?``."""


class SerializationError(BadRequestError, TypeError):
    """A value that durafn cannot store as JSON (inputs, outputs, event data, custom status)."""


class PayloadTooLargeError(DurafnError):
    """A request body larger than the host's configured limit."""

    status_code: ClassVar[int] = 413


class UnauthorizedError(DurafnError):
    """A missing or wrong function/master/system key."""

    status_code: ClassVar[int] = 401


class OrchestrationTimeoutError(DurafnError, TimeoutError):
    """The instance did not finish within the time given to ``wait_for_completion``."""

    status_code: ClassVar[int] = 504

    def __init__(self, instance_id: str, timeout: float) -> None:
        self.instance_id = instance_id
        self.timeout = timeout
        super().__init__(f"Instance '{instance_id}' did not finish within {timeout:g} s.")


class StoreSchemaError(DurafnError):
    """The database holds a schema this version of durafn does not understand."""


class StoreLockedError(DurafnError):
    """Another durafn host already serves this SQLite store; SQLite allows one host per file."""

    status_code: ClassVar[int] = 503


class KeysFileError(DurafnError):
    """The host's keys file cannot be read, created, or parsed, or lacks one of the keys."""


class ScaffoldError(DurafnError):
    """``durafn init`` or ``durafn new`` refused: the message says what exists or is wrong."""


class HostRequestError(DurafnError):
    """A call to a running host's management API failed; ``status`` is None when the host was not
    reachable at all, else the HTTP status it answered with.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class TaskFailedError(DurafnError):
    """Raised inside an orchestrator when an activity or sub-orchestration it awaited failed.

    ``error_type``, ``message`` and ``traceback`` describe the original error.
    """

    def __init__(self, function: str, error_type: str, message: str, traceback: str = "") -> None:
        self.function = function
        self.error_type = error_type
        self.message = message
        self.traceback = traceback
        super().__init__(f"'{function}' failed with {error_type}: {message}")


class NonDeterminismError(DurafnError):
    """Replaying the orchestrator produced a step that differs from its recorded history."""
