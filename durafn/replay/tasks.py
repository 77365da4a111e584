"""Tasks: what an orchestrator yields, completed from history events as the executor replays them.

A task is completed at most once. ``_order`` records the position in history of the event that
completed it, so composites (task_all, task_any) can tell which of several finished tasks finished
first without a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from durafn.models import RetryOptions
from durafn.replay.retry import next_attempt_at


class Task:
    """Work an orchestrator yields; ``result`` and ``exception`` are set once it completes."""

    def __init__(self) -> None:
        self._completed = False
        self._result: Any = None
        self._exception: Exception | None = None
        self._order = -1
        self._parents: list[CompositeTask] = []

    @property
    def is_completed(self) -> bool:
        """True once the task has finished, successfully or not."""
        return self._completed

    @property
    def is_faulted(self) -> bool:
        """True if the task finished with an exception."""
        return self._exception is not None

    @property
    def result(self) -> Any:
        """The decoded value the task completed with; None before that or if it failed."""
        return self._result

    @property
    def exception(self) -> Exception | None:
        """The error the task failed with, else None."""
        return self._exception

    def _resolve(self, value: Any, order: int) -> None:
        if self._completed:
            return
        self._completed = True
        self._result = value
        self._order = order
        self._notify()

    def _reject(self, error: Exception, order: int) -> None:
        if self._completed:
            return
        self._completed = True
        self._exception = error
        self._order = order
        self._notify()

    def _notify(self) -> None:
        for parent in self._parents:
            parent._child_done(self)

    def _describe(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        state = "failed" if self.is_faulted else "completed" if self._completed else "pending"
        return f"<{self._describe()} {state}>"


class ActivityTask(Task):
    """An activity call; completed by TaskCompleted or TaskFailed with its ``task_id``."""

    def __init__(self, task_id: int, name: str) -> None:
        super().__init__()
        self.task_id = task_id
        self.name = name

    def _describe(self) -> str:
        return f"ActivityTask '{self.name}' #{self.task_id}"


class SubOrchestrationTask(Task):
    """A sub-orchestration call; completed when child ``instance_id`` completes or fails."""

    def __init__(self, task_id: int, name: str, instance_id: str) -> None:
        super().__init__()
        self.task_id = task_id
        self.name = name
        self.instance_id = instance_id

    def _describe(self) -> str:
        return f"SubOrchestrationTask '{self.name}' #{self.task_id}"


class TimerTask(Task):
    """A durable timer due at ``fire_at``; ``cancel()`` makes it never complete."""

    def __init__(self, task_id: int, fire_at: datetime) -> None:
        super().__init__()
        self.task_id = task_id
        self.fire_at = fire_at
        self._cancelled = False

    @property
    def is_cancelled(self) -> bool:
        """True once ``cancel()`` was called before the timer fired."""
        return self._cancelled

    def cancel(self) -> None:
        """Stop waiting for the timer: it never completes, and its TimerFired is ignored."""
        if not self._completed:
            self._cancelled = True

    def _resolve(self, value: Any, order: int) -> None:
        if not self._cancelled:
            super()._resolve(value, order)

    def _describe(self) -> str:
        return f"TimerTask #{self.task_id} at {self.fire_at.isoformat()}"


class ExternalEventTask(Task):
    """Waits for external event ``name``; its result is the event's decoded data."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def _describe(self) -> str:
        return f"ExternalEventTask '{self.name}'"


class CompositeTask(Task):
    """A task whose outcome follows other tasks (its ``children``)."""

    def __init__(self, children: Sequence[Task]) -> None:
        super().__init__()
        self.children: list[Task] = list(children)
        for child in self.children:
            child._parents.append(self)

    def _child_done(self, child: Task) -> None:
        raise NotImplementedError


class WhenAll(CompositeTask):
    """Completes with every child's result, in the order given; fails with the first failure."""

    def __init__(self, children: Sequence[Task]) -> None:
        super().__init__(children)
        done = [child for child in self.children if child.is_completed]
        failed = [child for child in done if child.is_faulted]
        if failed:
            self._child_done(min(failed, key=lambda child: child._order))
        elif len(done) == len(self.children):
            self._resolve([child.result for child in self.children], _last_order(done))

    def _child_done(self, child: Task) -> None:
        if self._completed:
            return
        if child.exception is not None:
            self._reject(child.exception, child._order)
        elif all(task.is_completed for task in self.children):
            self._resolve([task.result for task in self.children], child._order)


class WhenAny(CompositeTask):
    """Completes with the first child to finish, successfully or not (the task, not its result)."""

    def __init__(self, children: Sequence[Task]) -> None:
        if not children:
            raise ValueError("task_any needs at least one task; with none it could never complete")
        super().__init__(children)
        done = [child for child in self.children if child.is_completed]
        if done:
            self._child_done(min(done, key=lambda child: child._order))

    def _child_done(self, child: Task) -> None:
        self._resolve(child, child._order)


class RetryableTask(CompositeTask):
    """An activity or sub-orchestration retried under RetryOptions; fails with the last error.

    The context supplies the callbacks that create attempts and timers, so this class only
    decides what comes next; ``now`` reads the current orchestration time.
    """

    def __init__(
        self,
        options: RetryOptions,
        first_scheduled_at: datetime,
        start_attempt: Callable[[], Task],
        start_timer: Callable[[datetime], Task],
        now: Callable[[], datetime],
    ) -> None:
        super().__init__(())
        self.options = options
        self.attempts = 0
        self._first_scheduled_at = first_scheduled_at
        self._start_attempt = start_attempt
        self._start_timer = start_timer
        self._now = now
        self._timer: Task | None = None
        self._next_attempt()

    def _next_attempt(self) -> None:
        self._timer = None
        self.attempts += 1
        self._watch(self._start_attempt())

    def _watch(self, child: Task) -> None:
        self.children.append(child)
        child._parents.append(self)

    def _child_done(self, child: Task) -> None:
        if self._completed:
            return
        if child is self._timer:
            self._next_attempt()
            return
        if child.exception is None:
            self._resolve(child.result, child._order)
            return
        retry_at = next_attempt_at(
            self.options, self.attempts, self._first_scheduled_at, self._now()
        )
        if retry_at is None:
            self._reject(child.exception, child._order)
        else:
            self._timer = self._start_timer(retry_at)
            self._watch(self._timer)

    def _describe(self) -> str:
        return f"RetryableTask ({self.attempts} attempt(s))"


def _last_order(tasks: Sequence[Task]) -> int:
    return max((task._order for task in tasks), default=-1)
