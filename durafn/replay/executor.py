"""OrchestrationExecutor: drives one orchestrator generator from history events to actions.

The executor is pure: events in, actions out, no clock or I/O. It replays the history it is built
with, then keeps the generator alive so each later step costs one ``send``, not a replay.
Scheduling events in history (TaskScheduled, TimerCreated, SubOrchestrationInstanceCreated) are
the runtime's record of actions returned earlier; during replay they are matched against the
actions the code produces again, and a mismatch fails the instance with NonDeterminismError.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import traceback
from collections.abc import Callable, Generator, Sequence
from typing import Any

from durafn.errors import NonDeterminismError, TaskFailedError
from durafn.models import FailureDetails
from durafn.replay.actions import (
    Action,
    CompleteOrchestration,
    ContinueOrchestrationAsNew,
    CreateTimer,
    FailOrchestration,
    ScheduleActivity,
    StartSubOrchestration,
)
from durafn.replay.context import DurableOrchestrationContext, function_name
from durafn.replay.history import (
    ContinueAsNew,
    EventRaised,
    ExecutionCompleted,
    ExecutionStarted,
    HistoryEvent,
    OrchestratorStarted,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from durafn.replay.tasks import ActivityTask, SubOrchestrationTask, Task, TimerTask
from durafn.serialization import decode, encode

_Scheduling = TaskScheduled | TimerCreated | SubOrchestrationInstanceCreated
_Outcome = (
    TaskCompleted
    | TaskFailed
    | TimerFired
    | SubOrchestrationInstanceCompleted
    | SubOrchestrationInstanceFailed
)

_OUTCOME_TASK: dict[type[HistoryEvent], type[Task]] = {
    TaskCompleted: ActivityTask,
    TaskFailed: ActivityTask,
    TimerFired: TimerTask,
    SubOrchestrationInstanceCompleted: SubOrchestrationTask,
    SubOrchestrationInstanceFailed: SubOrchestrationTask,
}

_YIELD_HINT = (
    "yield a task from the context (call_activity, call_sub_orchestrator, create_timer, "
    "wait_for_external_event, task_all, task_any)"
)
_ASYNC_HINT = (
    "orchestrators are generator functions, not `async def`: write `def` and "
    "`result = yield context.call_activity(...)` instead of `await`"
)


@dataclasses.dataclass(frozen=True)
class Step:
    """What one step decided: the new actions, the current custom status, and whether done."""

    actions: list[Action]
    custom_status: str | None
    done: bool


class OrchestrationExecutor:
    """Holds one orchestrator generator and advances it as history events arrive; never raises."""

    def __init__(
        self,
        orchestrator: Callable[..., Any],
        *,
        instance_id: str,
        history: Sequence[HistoryEvent] = (),
        context_name: str | None = None,
    ) -> None:
        self._orchestrator = orchestrator
        self._context_name = context_name
        self._context = DurableOrchestrationContext(instance_id)
        self._name = _default_name(orchestrator)
        self._started = False
        self._generator: Generator[Any, Any, Any] | None = None
        self._awaited: Task | None = None
        self._terminal: Action | None = None
        self._terminal_recorded = False
        self._history_length = 0
        self._context._is_replaying = True
        self._process(history)
        self._context._is_replaying = False

    @property
    def history_length(self) -> int:
        """Number of events processed so far: the constructor's history plus every apply()."""
        return self._history_length

    @property
    def done(self) -> bool:
        """True once the orchestration reached a terminal action (complete, fail, continue)."""
        return self._terminal is not None

    @property
    def context(self) -> DurableOrchestrationContext:
        """The context the orchestrator was given."""
        return self._context

    def apply(self, new_events: Sequence[HistoryEvent]) -> Step:
        """Process new events and return the decisions made since the previous step."""
        self._context._is_replaying = False
        self._process(new_events)
        actions = self._context._take_actions()
        if self._terminal is not None and not self._terminal_recorded:
            actions.append(self._terminal)
            self._terminal_recorded = True
        return Step(actions, self._context._custom_status_text, self._terminal is not None)

    # -- event handling ------------------------------------------------------------------------

    def _process(self, events: Sequence[HistoryEvent]) -> None:
        for event in events:
            order = self._history_length
            self._history_length += 1
            try:
                self._handle(event, order)
            except Exception as error:
                # Corrupt history (bad JSON, ...) or a bug here must not escape: it fails the
                # instance instead, as the never-raises contract promises.
                self._fail(error)

    def _handle(self, event: HistoryEvent, order: int) -> None:
        if isinstance(event, (ExecutionCompleted, ContinueAsNew)):
            # The runtime recorded the terminal action: never return it again.
            if self._terminal is not None:
                self._terminal_recorded = True
        elif isinstance(event, (TaskScheduled, TimerCreated, SubOrchestrationInstanceCreated)):
            self._confirm(event)
        elif self._terminal is not None:
            if isinstance(event, EventRaised):
                self._carry_over(event)
        elif isinstance(event, OrchestratorStarted):
            self._context._set_time(event.timestamp)
        elif isinstance(event, ExecutionStarted):
            self._start(event)
        elif isinstance(event, EventRaised):
            self._context._deliver_event(event, order)
            self._resume()
        elif isinstance(
            event,
            (
                TaskCompleted,
                TaskFailed,
                TimerFired,
                SubOrchestrationInstanceCompleted,
                SubOrchestrationInstanceFailed,
            ),
        ):
            self._complete_task(event, order)
            self._resume()
        # Suspension, resumption and termination are the runtime's business.

    def _carry_over(self, event: EventRaised) -> None:
        # An event behind continue_as_new in the same batch belongs to the next generation.
        terminal = self._terminal
        if isinstance(terminal, ContinueOrchestrationAsNew) and not self._terminal_recorded:
            carried = (*terminal.carryover_events, event)
            self._terminal = dataclasses.replace(terminal, carryover_events=carried)

    def _confirm(self, event: _Scheduling) -> None:
        context = self._context
        action = context._unrecorded.pop(event.task_id, None)
        if action is None:
            if event.task_id < context._next_task_id:
                return  # matched or returned earlier: the record repeats what we know
            produced = "nothing: the orchestrator did not schedule it"
        elif _matches(event, action):
            return
        else:
            produced = _describe_action(action)
        self._nondeterminism(event.task_id, _describe_scheduling(event), produced)

    def _complete_task(self, event: _Outcome, order: int) -> None:
        context = self._context
        task = context._open.get(event.task_id)
        if not isinstance(task, _OUTCOME_TASK[type(event)]):
            # No such open task, or one of another kind: a cancelled timer, or a stale or
            # repeated message (e.g. from before a continue-as-new). Ignoring it is the same
            # decision on every replay, so determinism holds.
            return
        del context._open[event.task_id]
        if context._is_replaying:
            # An outcome proves the work was scheduled, even if its record is missing.
            context._unrecorded.pop(event.task_id, None)
        if isinstance(event, TimerFired):
            task._resolve(None, order)
        elif isinstance(event, (TaskCompleted, SubOrchestrationInstanceCompleted)):
            task._resolve(decode(event.result), order)
        else:
            assert isinstance(task, (ActivityTask, SubOrchestrationTask))
            task._reject(_task_failed(task.name, event.failure), order)

    # -- driving the generator -----------------------------------------------------------------

    def _start(self, event: ExecutionStarted) -> None:
        if self._started:
            return  # a repeated start record; the generator already runs
        self._started = True
        context = self._context
        context._begin(event)
        context._set_time(event.timestamp, only_if_unset=True)
        self._name = event.name or self._name
        try:
            if self._context_name:
                produced = self._orchestrator(**{self._context_name: context})
            else:
                produced = self._orchestrator(context)
        except Exception as error:
            self._fail(error)
            return
        if inspect.isgenerator(produced):
            self._generator = produced
            self._advance(produced.send, None)
            self._resume()
        elif inspect.iscoroutine(produced):
            produced.close()  # never awaited, and it must not warn about that
            self._fail(TypeError(f"orchestrator '{self._name}' is a coroutine; {_ASYNC_HINT}"))
        else:
            # Validation rejects non-generator orchestrators; here the value is simply the output.
            self._complete(produced)

    def _resume(self) -> None:
        while self._terminal is None and self._awaited is not None and self._awaited.is_completed:
            task = self._awaited
            self._awaited = None
            generator = self._generator
            assert generator is not None
            if task.exception is not None:
                self._advance(generator.throw, task.exception)
            else:
                self._advance(generator.send, task.result)

    def _advance(self, resume: Callable[[Any], Any], value: Any) -> None:
        try:
            yielded = resume(value)
        except StopIteration as stop:
            self._complete(stop.value)
            return
        except Exception as error:
            self._fail(error)
            return
        if isinstance(yielded, Task):
            self._awaited = yielded
        else:
            self._fail(self._bad_yield(yielded))

    def _bad_yield(self, value: Any) -> TypeError:
        hint = ""
        if inspect.iscoroutine(value):
            value.close()
            hint = f" It yielded a coroutine: {_ASYNC_HINT}."
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return TypeError(
            f"orchestrator '{self._name}' yielded {type(value).__name__} {shown}; "
            f"{_YIELD_HINT}.{hint}"
        )

    # -- terminal actions ----------------------------------------------------------------------

    def _complete(self, value: Any) -> None:
        context = self._context
        if context._continue_as_new:
            # Work scheduled but not recorded would report back into the next generation.
            self._finish(
                ContinueOrchestrationAsNew(context._continue_input, context._carryover()),
                keep_actions=False,
            )
            return
        try:
            output = encode(value, what=f"output of orchestrator '{self._name}'")
        except Exception as error:
            self._fail(error)
            return
        # Fire-and-forget work scheduled in the last step still goes out with the completion.
        self._finish(CompleteOrchestration(output), keep_actions=True)

    def _fail(self, error: Exception) -> None:
        details = FailureDetails(
            error_type=type(error).__name__,
            message=_safe(lambda: str(error)),
            traceback=_safe(lambda: _format_traceback(error)),
            function=self._name,
        )
        self._finish(FailOrchestration(details), keep_actions=False)

    def _nondeterminism(self, task_id: int, held: str, produced: str) -> None:
        self._fail(
            NonDeterminismError(
                f"orchestrator '{self._name}' is not deterministic: at step {task_id} (task id "
                f"{task_id}) history holds {held}, but the code produced {produced}. An "
                "orchestrator must make the same calls in the same order on every replay (take "
                "time and ids from the context, do no I/O); to change its steps, give the new "
                "version a new name or let running instances finish first."
            )
        )

    def _finish(self, action: Action, *, keep_actions: bool) -> None:
        if self._terminal_recorded:
            return  # the recorded outcome stands
        self._terminal = action
        self._context._sealed = True
        if not keep_actions:
            self._context._unrecorded.clear()
        self._awaited = None
        generator, self._generator = self._generator, None
        if generator is not None:
            # Runs the orchestrator's finally blocks now rather than at garbage collection;
            # whatever they raise cannot change an outcome that is already decided.
            with contextlib.suppress(Exception):
                generator.close()


def _default_name(orchestrator: Callable[..., Any]) -> str:
    try:
        return function_name(orchestrator)
    except TypeError:
        return type(orchestrator).__name__


def _safe(render: Callable[[], str]) -> str:
    # A user exception whose __str__ raises must not break the never-raises contract.
    try:
        return render()
    except Exception as error:
        return f"<unprintable: {type(error).__name__}>"


def _format_traceback(error: Exception) -> str:
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    if isinstance(error, TaskFailedError) and error.traceback:
        # The orchestrator's frames say where it awaited; the remote ones say what went wrong.
        text += f"\n'{error.function}' failed remotely:\n{error.traceback}"
    return text


def _task_failed(function: str, failure: FailureDetails) -> TaskFailedError:
    return TaskFailedError(
        function=function,
        error_type=failure.error_type,
        message=failure.message,
        traceback=failure.traceback,
    )


def _matches(event: _Scheduling, action: Action) -> bool:
    if isinstance(event, TaskScheduled):
        return isinstance(action, ScheduleActivity) and action.name == event.name
    if isinstance(event, TimerCreated):
        return isinstance(action, CreateTimer)
    return isinstance(action, StartSubOrchestration) and action.name == event.name


def _describe_scheduling(event: _Scheduling) -> str:
    if isinstance(event, TaskScheduled):
        return f"activity '{event.name}'"
    if isinstance(event, TimerCreated):
        return "a timer"
    return f"sub-orchestration '{event.name}'"


def _describe_action(action: Action) -> str:
    if isinstance(action, ScheduleActivity):
        return f"activity '{action.name}'"
    if isinstance(action, CreateTimer):
        return "a timer"
    if isinstance(action, StartSubOrchestration):
        return f"sub-orchestration '{action.name}'"
    return type(action).__name__
