"""DurableOrchestrationContext: what an orchestrator sees; every value comes from history.

The context also keeps the state of one execution that the executor drives: the task id counter,
the tasks waiting for an outcome, the actions not yet recorded, and the external events that
arrived before anyone waited for them.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from durafn.models import RetryOptions, validate_instance_id
from durafn.replay.actions import Action, CreateTimer, ScheduleActivity, StartSubOrchestration
from durafn.replay.history import EventRaised, ExecutionStarted
from durafn.replay.tasks import (
    ActivityTask,
    ExternalEventTask,
    RetryableTask,
    SubOrchestrationTask,
    Task,
    TimerTask,
    WhenAll,
    WhenAny,
)
from durafn.serialization import decode, decode_as, encode

FUNCTION_NAME_ATTR = "__durafn_name__"
"""The attribute the App's decorators set on a registered function to record its durafn name."""

UUID_NAMESPACE = uuid.UUID("9e952958-5e33-4daf-827f-2fa12937b875")
"""Namespace of ``new_uuid``'s uuid5 values (the one Azure Durable Functions uses)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# Distinguishes "input= not passed" from "input=None" in the Azure-compatible signatures.
_UNSET: Any = object()


def function_name(name_or_fn: str | Callable[..., Any]) -> str:
    """Return the durafn name of a function: a str as is, else its registered name or __name__."""
    if isinstance(name_or_fn, str):
        return name_or_fn
    if callable(name_or_fn):
        registered = getattr(name_or_fn, FUNCTION_NAME_ATTR, None)
        if isinstance(registered, str):
            return registered
        name = getattr(name_or_fn, "__name__", None)
        if isinstance(name, str):
            return name
    raise TypeError(
        f"expected a function name (str) or a function registered with the app, got "
        f"{type(name_or_fn).__name__} {name_or_fn!r}"
    )


def _utc(value: datetime) -> datetime:
    # Naive datetimes in history and user code mean UTC; aware ones are normalised to UTC.
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _pick_input(input_: Any, input: Any, method: str) -> Any:
    if input is _UNSET:
        return input_
    if input_ is not None:
        raise TypeError(f"{method}() got both input_ and input; pass one of them")
    return input


class DurableOrchestrationContext:
    """The orchestrator's view of its instance: inputs, deterministic time and ids, and tasks."""

    def __init__(self, instance_id: str) -> None:
        self._instance_id = instance_id
        self._name = ""
        self._execution_id = ""
        self._parent_instance_id: str | None = None
        self._input_text: str | None = None
        self._is_replaying = False
        self._current_utc_datetime = _EPOCH
        self._time_set = False
        self._custom_status_text: str | None = None
        self._continue_as_new = False
        self._continue_input: str | None = None
        self._uuid_counter = 0
        self._next_task_id = 0
        # Set by the executor once a terminal action exists: later calls (e.g. from a finally
        # block run by generator.close()) must not add decisions.
        self._sealed = False
        self._open: dict[int, Task] = {}
        self._unrecorded: dict[int, Action] = {}
        self._waiters: dict[str, deque[ExternalEventTask]] = {}
        self._inbox: dict[str, deque[tuple[int, EventRaised]]] = {}

    @property
    def instance_id(self) -> str:
        """The id of this orchestration instance."""
        return self._instance_id

    @property
    def parent_instance_id(self) -> str | None:
        """The instance id of the parent orchestration, or None when not a sub-orchestration."""
        return self._parent_instance_id

    @property
    def is_replaying(self) -> bool:
        """True while recorded history is being replayed; False while new events are processed."""
        return self._is_replaying

    @property
    def current_utc_datetime(self) -> datetime:
        """The time of the current orchestration step, from history (never the clock), in UTC."""
        return self._current_utc_datetime

    @property
    def custom_status(self) -> Any:
        """The custom status last set with :meth:`set_custom_status` (decoded), else None."""
        return decode(self._custom_status_text)

    @property
    def will_continue_as_new(self) -> bool:
        """True once :meth:`continue_as_new` was called."""
        return self._continue_as_new

    def get_input(self, as_type: type | None = None) -> Any:
        """Return the orchestration's input, decoded; with ``as_type``, converted to that class."""
        value = decode(self._input_text)
        return value if as_type is None else decode_as(value, as_type)

    def new_uuid(self) -> str:
        """Return a UUID that is the same on every replay (uuid5 of instance, run, counter)."""
        name = f"{self._instance_id}:{self._execution_id}:{self._uuid_counter}"
        self._uuid_counter += 1
        return str(uuid.uuid5(UUID_NAMESPACE, name))

    def set_custom_status(self, value: Any) -> None:
        """Set the status shown to clients; encoded at once, so bad values raise here."""
        self._custom_status_text = encode(value, what="custom status")

    def call_activity(
        self, name: str | Callable[..., Any], input_: Any = None, *, input: Any = _UNSET
    ) -> Task:
        """Schedule activity ``name`` (a name or the function) with ``input_``/``input``."""
        activity = function_name(name)
        value = _pick_input(input_, input, "call_activity")
        return self._new_activity(activity, encode(value, what=f"input of '{activity}'"))

    def call_activity_with_retry(
        self,
        name: str | Callable[..., Any],
        retry_options: RetryOptions,
        input_: Any = None,
        *,
        input: Any = _UNSET,
    ) -> Task:
        """Like :meth:`call_activity`, retrying failed attempts as ``retry_options`` say."""
        activity = function_name(name)
        value = _pick_input(input_, input, "call_activity_with_retry")
        text = encode(value, what=f"input of '{activity}'")
        return self._new_retryable(retry_options, lambda: self._new_activity(activity, text))

    def call_sub_orchestrator(
        self,
        name: str | Callable[..., Any],
        input_: Any = None,
        instance_id: str | None = None,
        *,
        input: Any = _UNSET,
    ) -> Task:
        """Start orchestrator ``name`` as a child instance and wait for its output.

        The child's id defaults to ``"<instance_id>:<task id>"``, the same on every replay.
        """
        orchestrator = function_name(name)
        value = _pick_input(input_, input, "call_sub_orchestrator")
        text = encode(value, what=f"input of '{orchestrator}'")
        child_id = self._child_id(instance_id)
        return self._new_sub_orchestration(orchestrator, child_id, text)

    def call_sub_orchestrator_with_retry(
        self,
        name: str | Callable[..., Any],
        retry_options: RetryOptions,
        input_: Any = None,
        instance_id: str | None = None,
        *,
        input: Any = _UNSET,
    ) -> Task:
        """Like :meth:`call_sub_orchestrator`, retrying; every attempt reuses one child id."""
        orchestrator = function_name(name)
        value = _pick_input(input_, input, "call_sub_orchestrator_with_retry")
        text = encode(value, what=f"input of '{orchestrator}'")
        # A failed child is finished, so each attempt may restart the same instance id.
        child_id = self._child_id(instance_id)
        return self._new_retryable(
            retry_options, lambda: self._new_sub_orchestration(orchestrator, child_id, text)
        )

    def _child_id(self, instance_id: str | None) -> str:
        # a bad explicit id fails here, in the orchestrator's code, not later in the store
        if instance_id is not None:
            return validate_instance_id(instance_id)
        return f"{self._instance_id}:{self._next_task_id}"

    def task_all(self, tasks: Sequence[Task]) -> Task:
        """Return a task giving the results in the order given; the first failure raises."""
        return WhenAll(_check_tasks(tasks, "task_all"))

    def task_any(self, tasks: Sequence[Task]) -> Task:
        """Return a task giving the first of ``tasks`` to finish; read ``.result`` on it."""
        return WhenAny(_check_tasks(tasks, "task_any"))

    def create_timer(self, fire_at: datetime) -> TimerTask:
        """Create a durable timer due at ``fire_at`` (naive means UTC); ``cancel()`` stops it."""
        if not isinstance(fire_at, datetime):
            raise TypeError(
                f"create_timer() takes a datetime, got {type(fire_at).__name__}; use "
                "context.current_utc_datetime + timedelta(...)"
            )
        return self._new_timer(_utc(fire_at))

    def wait_for_external_event(self, name: str) -> Task:
        """Return a task completed by the next external event ``name`` (case-insensitive)."""
        if not isinstance(name, str):
            raise TypeError(f"an event name must be a str, got {type(name).__name__}")
        key = name.lower()
        task = ExternalEventTask(name)
        buffered = self._inbox.get(key)
        if buffered:
            order, event = buffered.popleft()
            task._resolve(decode(event.input), order)
        else:
            self._waiters.setdefault(key, deque()).append(task)
        return task

    def continue_as_new(self, input_: Any) -> None:
        """Restart with fresh history and ``input_`` once the orchestrator returns."""
        self._continue_input = encode(input_, what="input of continue_as_new")
        self._continue_as_new = True

    # -- used by the executor ------------------------------------------------------------------

    def _begin(self, event: ExecutionStarted) -> None:
        self._name = event.name
        self._execution_id = event.execution_id
        self._parent_instance_id = event.parent_instance_id
        self._input_text = event.input

    def _set_time(self, timestamp: datetime, *, only_if_unset: bool = False) -> None:
        if only_if_unset and self._time_set:
            return
        self._time_set = True
        self._current_utc_datetime = _utc(timestamp)

    def _deliver_event(self, event: EventRaised, order: int) -> None:
        key = event.name.lower()
        waiters = self._waiters.get(key)
        if waiters:
            waiters.popleft()._resolve(decode(event.input), order)
        else:
            self._inbox.setdefault(key, deque()).append((order, event))

    def _carryover(self) -> tuple[EventRaised, ...]:
        pending = sorted(
            (item for queue in self._inbox.values() for item in queue), key=lambda item: item[0]
        )
        return tuple(event for _, event in pending)

    def _take_actions(self) -> list[Action]:
        actions = list(self._unrecorded.values())
        self._unrecorded.clear()
        return actions

    def _emit(self, action: Action, task: Task, task_id: int) -> None:
        self._open[task_id] = task
        if not self._sealed:
            self._unrecorded[task_id] = action

    def _take_task_id(self) -> int:
        task_id = self._next_task_id
        self._next_task_id += 1
        return task_id

    def _new_activity(self, name: str, input_text: str | None) -> ActivityTask:
        task_id = self._take_task_id()
        task = ActivityTask(task_id, name)
        self._emit(ScheduleActivity(task_id, name, input_text), task, task_id)
        return task

    def _new_sub_orchestration(
        self, name: str, instance_id: str, input_text: str | None
    ) -> SubOrchestrationTask:
        task_id = self._take_task_id()
        task = SubOrchestrationTask(task_id, name, instance_id)
        self._emit(StartSubOrchestration(task_id, name, instance_id, input_text), task, task_id)
        return task

    def _new_timer(self, fire_at: datetime) -> TimerTask:
        task_id = self._take_task_id()
        task = TimerTask(task_id, fire_at)
        self._emit(CreateTimer(task_id, fire_at), task, task_id)
        return task

    def _new_retryable(self, options: RetryOptions, start_attempt: Callable[[], Task]) -> Task:
        if not isinstance(options, RetryOptions):
            raise TypeError(f"retry_options must be a RetryOptions, got {type(options).__name__}")
        return RetryableTask(
            options,
            first_scheduled_at=self._current_utc_datetime,
            start_attempt=start_attempt,
            start_timer=self._new_timer,
            now=lambda: self._current_utc_datetime,
        )


def _check_tasks(tasks: Sequence[Task], method: str) -> list[Task]:
    items = list(tasks)
    for item in items:
        if not isinstance(item, Task):
            raise TypeError(
                f"{method}() takes tasks from the context (call_activity, create_timer, ...), "
                f"got {type(item).__name__}"
            )
    return items
