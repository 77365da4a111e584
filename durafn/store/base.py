"""The store interface: everything durafn persists, behind one Protocol with one conformance suite.

An instance's *inbox* holds messages (history events not yet processed: ExecutionStarted,
TaskCompleted, EventRaised, TimerFired, control events such as ExecutionTerminated). A message with
``visible_at`` in the future is a durable timer: it becomes claimable when that time comes. The
orchestration dispatcher claims instances that have visible messages, under a lease, and commits the
whole step (history, new work, status, consumed messages) in one transaction with
:meth:`Store.commit_step`. Activities are work items claimed under a lease; a lease that expires
(its host died) makes the item claimable again, so activities run at least once.

Every method is synchronous and atomic: it runs in one database transaction.

Several hosts may share one database (PostgreSQL). Each write that makes work claimable also
*announces* it, in the same transaction, so that the other hosts' :meth:`Store.listen` hears of it
the moment it is committed instead of at their next poll.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from durafn.models import InstanceQuery, OrchestrationRuntimeStatus
from durafn.replay.history import HistoryEvent
from durafn.store.clock import Clock

SCHEDULE_RUNS_KEPT = timedelta(hours=1)
"""How long a claimed cron run is remembered: far longer than hosts' clocks or schedulers
drift apart, so no host makes a run another already made."""
CONTROL_EVENT_TYPES = frozenset({"ExecutionTerminated", "ExecutionSuspended", "ExecutionResumed"})
"""Message types a Suspended instance still processes (the others wait until it is resumed)."""


class Work(enum.Flag):
    """Kinds of new work a store announces to the other hosts on its database."""

    NONE = 0
    ORCHESTRATIONS = 1
    """Inbox messages visible now: dispatchers should claim."""
    ACTIVITIES = 2
    """Activity work items: activity workers should claim."""
    TIMERS = 4
    """Inbox messages visible later: timer services should read the next due time again."""
    ALL = ORCHESTRATIONS | ACTIVITIES | TIMERS


class WorkListener(Protocol):
    """A subscription to the work that other Store objects (hosts, clients) add to a database."""

    def wait(self, timeout: float) -> Work:
        """Block up to ``timeout`` seconds for announcements; what they announced, NONE if none.

        Announcements made while not listening (the connection was lost and is made again) are
        lost, so the first wait after a reconnection returns ALL. Raises the database's error
        while it cannot be reached.
        """
        ...

    def interrupt(self) -> None:
        """Make a wait in progress, or else the next one, return at once; safe from any thread."""
        ...

    def close(self) -> None:
        """Stop listening and release the connection; not while a wait is in progress."""
        ...


@dataclass(frozen=True)
class InstanceRecord:
    """One orchestration instance as stored; payloads are JSON text."""

    instance_id: str
    name: str
    execution_id: str
    status: OrchestrationRuntimeStatus
    input: str | None
    output: str | None
    custom_status: str | None
    created_time: datetime
    last_updated_time: datetime
    parent_instance_id: str | None = None
    parent_task_id: int | None = None
    history_length: int = 0
    """History events of the current execution; lets a cached executor check it is current."""


@dataclass(frozen=True)
class Message:
    """An inbox message claimed for processing; ``id`` is passed back to commit_step as consumed."""

    id: int
    event: HistoryEvent


@dataclass(frozen=True)
class OrchestrationWorkItem:
    """An instance claimed under a lease, with its visible messages in arrival order."""

    instance: InstanceRecord
    messages: list[Message]


@dataclass(frozen=True)
class ActivityWorkItem:
    """An activity to run, claimed under a lease; ``attempt`` counts claims, this one included."""

    id: int
    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None
    attempt: int = 1


@dataclass(frozen=True)
class NewMessage:
    """A message to put in an instance's inbox; ``visible_at`` in the future makes it a timer.

    ``execution_id``, when set, ties the message to one execution of the instance: if the instance
    has restarted or continued as new by the time it is claimed, the message is dropped.
    """

    instance_id: str
    event: HistoryEvent
    visible_at: datetime | None = None
    execution_id: str | None = None


@dataclass(frozen=True)
class NewActivity:
    """An activity work item to create for the committing instance."""

    task_id: int
    name: str
    input: str | None


@dataclass(frozen=True)
class NewSubOrchestration:
    """A child instance to create, reporting back to the committing instance as ``parent_task_id``.

    If ``instance_id`` is already active, the store does not touch it and instead puts a
    SubOrchestrationInstanceFailed message (InstanceExistsError) in the parent's inbox.
    """

    instance_id: str
    name: str
    input: str | None
    execution_id: str
    parent_task_id: int


@dataclass(frozen=True)
class NewInstance:
    """The instance a step creates as it commits that instance's first step."""

    name: str
    input: str | None


@dataclass
class StepCommit:
    """Everything one orchestration step changes, committed in one transaction."""

    instance_id: str
    execution_id: str
    """The execution the step was computed for; the commit is refused if it is no longer current."""
    worker_id: str
    consumed: list[int]
    """Ids of the inbox messages this step processed; they are deleted."""
    history: list[HistoryEvent]
    """Events appended to the history (or, with ``new_execution_id``, the whole new history)."""
    status: OrchestrationRuntimeStatus
    output: str | None = None
    custom_status: str | None = None
    activities: list[NewActivity] = field(default_factory=list)
    messages: list[NewMessage] = field(default_factory=list)
    sub_orchestrations: list[NewSubOrchestration] = field(default_factory=list)
    new_execution_id: str | None = None
    """Set by continue-as-new: the old history is deleted, ``history`` starts the new execution,
    and ``new_input`` becomes the instance's input."""
    new_input: str | None = None
    release: bool = True
    """Give the lease up after the commit (False keeps it, to process more messages at once)."""
    history_length: int | None = None
    """The stored history length the step was computed on: the commit is refused if it changed."""
    activity_result: int | None = None
    """The step processed an activity's result handed over in memory, with no claim and no inbox
    message: the id of that activity work item, which the commit deletes. The commit is refused
    unless the item exists, and the instance is Running, unleased, at ``history_length`` and has
    nothing visible in its inbox (which goes first, in arrival order)."""
    lease_activities: int = 0
    """Lease up to this many of the new activities to ``worker_id`` until ``lease_until``, and
    return them from commit_step, so that the committing host runs them without a claim."""
    lease_until: datetime | None = None
    new_instance: NewInstance | None = None
    """Set on the first step of an instance started in the committer's own process: the
    instance is created in the same transaction, as create_instance would but with no inbox
    message (``history`` holds its ExecutionStarted). Raises InstanceExistsError, writing
    nothing, when the id is active."""

    def work(self, now: datetime) -> Work:
        """The work the step adds for workers once committed at ``now``: activities it does not
        lease to its committer, messages due now, timers.
        """
        work = Work.ACTIVITIES if len(self.activities) > self.lease_activities else Work.NONE
        if self.sub_orchestrations:
            work |= Work.ORCHESTRATIONS
        for m in self.messages:
            due = m.visible_at is None or m.visible_at <= now
            work |= Work.ORCHESTRATIONS if due else Work.TIMERS
        return work


@dataclass(frozen=True)
class Outcome:
    """What one call of :meth:`Store.batch` returned, or the exception it raised."""

    value: Any = None
    error: Exception | None = None


class Store(Protocol):
    """Durable state of instances, histories, inboxes, timers and activity work items.

    Terminal statuses (Completed, Failed, Terminated) are final for an execution: committing one
    deletes the instance's remaining inbox messages and activity work items, and no message is
    accepted for a terminal instance afterwards. Leases are identified by ``worker_id``; an
    operation made under a lease that has been lost (expired and taken, or the instance
    terminated and restarted) writes nothing and reports it.
    """

    url: str
    immediate: bool
    """True when :meth:`batch_now` may run calls: the store's transactions never wait on I/O."""
    lone_calls_inline: bool
    """True when :meth:`batch_now` may run a lone call made while no other is in flight, though
    it waits on I/O: the hop to another thread and back costs more than it spares the caller."""

    def create_instance(
        self,
        instance_id: str,
        name: str,
        input: str | None,
        execution_id: str,
        now: datetime,
    ) -> None:
        """Create the instance as Pending with an ExecutionStarted message in its inbox.

        Raises InstanceExistsError when the id is Pending, Running or Suspended, decided by the
        database so that of concurrent starts exactly one wins. A Completed, Failed or Terminated
        instance with that id is replaced, its old history, inbox and work deleted.
        """
        ...

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        """The instance, or None when there is none with that id."""
        ...

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The current execution's history in order ([] for an unknown instance)."""
        ...

    def query_instances(self, query: InstanceQuery) -> tuple[list[InstanceRecord], str | None]:
        """Instances matching ``query`` ordered by (created_time, instance_id), and a continuation
        token for the next page (None on the last page). Keyset paging: instances created while
        a client pages appear on a later page, never twice and never skipped.
        Raises BadRequestError for a malformed continuation token.
        """
        ...

    def enqueue_message(
        self,
        instance_id: str,
        event: HistoryEvent,
        now: datetime,
        *,
        allowed: frozenset[OrchestrationRuntimeStatus],
        action: str,
    ) -> None:
        """Put ``event`` in the inbox if the instance's status is in ``allowed`` (checked in the
        same transaction). Raises InstanceNotFoundError, or InvalidInstanceStateError naming
        ``action``.
        """
        ...

    def claim_orchestrations(
        self, worker_id: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[OrchestrationWorkItem]:
        """Lease up to ``limit`` instances that have messages visible at ``now`` and no live lease.

        A Suspended instance is claimed only for control messages (CONTROL_EVENT_TYPES) and only
        those are returned for it. Messages tied to an execution that is no longer current are
        deleted, not returned.
        """
        ...

    def commit_step(self, commit: StepCommit, now: datetime) -> list[ActivityWorkItem] | None:
        """Apply one step atomically and return the activities it leased to the committer (see
        StepCommit.lease_activities); None, writing nothing, if the lease or execution is lost
        or another condition of the commit does not hold.
        """
        ...

    def abandon_orchestration(self, instance_id: str, worker_id: str) -> None:
        """Give up a lease without consuming anything, so the messages are claimed again."""
        ...

    def claim_activities(
        self, worker_id: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[ActivityWorkItem]:
        """Lease up to ``limit`` activity work items with no live lease, oldest first."""
        ...

    def complete_activity(self, item: ActivityWorkItem, event: HistoryEvent, now: datetime) -> bool:
        """Delete the work item; put ``event`` (TaskCompleted/TaskFailed) in its instance's inbox.

        False, and nothing written, when the item no longer exists (completed by another worker
        after a lease expiry, or its instance ended or restarted).
        """
        ...

    def renew_leases(self, worker_id: str, lease_until: datetime) -> None:
        """Extend every lease ``worker_id`` holds (orchestrations and activities)."""
        ...

    def release_leases(self, worker_id: str) -> None:
        """Drop every lease ``worker_id`` holds, so its work is claimable at once (clean stop)."""
        ...

    def attach_host(self, worker_id: str) -> None:
        """Register a host that will claim work. SQLite allows one host per database file: it takes
        an exclusive lock (StoreLockedError if held) and then frees the leases a killed host left.
        """
        ...

    def listen(self) -> WorkListener | None:
        """Subscribe to the work other Store objects on this database announce (not this one's
        own). None where no other host can add work (SQLite: one host per file; a client in
        another process is noticed at the next poll).
        """
        ...

    def clock_offset(self, host_clock: Clock) -> timedelta | None:
        """How far the database server's clock is ahead of ``host_clock`` (negative: behind),
        measured now; None where every process sharing the store runs on one machine and reads
        its clock (SQLite).
        """
        ...

    def next_visible_time(self, now: datetime) -> datetime | None:
        """The earliest ``visible_at`` after ``now`` of any message (the next timer), or None."""
        ...

    def claim_schedule_run(self, name: str, due: datetime, worker_id: str, now: datetime) -> bool:
        """Claim the run of cron function ``name`` due at ``due`` for ``worker_id``: True for
        the one claim that makes it, False for every other (hosts sharing the store). Claims
        more than SCHEDULE_RUNS_KEPT older than ``now`` are forgotten.
        """
        ...

    def rewind_instance(
        self,
        instance_id: str,
        history_length: int,
        history: list[HistoryEvent],
        activities: list[NewActivity],
        now: datetime,
    ) -> None:
        """Make a Failed instance Running again: ``history`` replaces its history, ``activities``
        are scheduled again and its output is cleared. Raises InstanceNotFoundError, or
        InvalidInstanceStateError unless it is still Failed with ``history_length`` events.
        """
        ...

    def purge_instance(self, instance_id: str) -> int:
        """Delete a finished instance and everything it owns; returns 1.

        Raises InstanceNotFoundError, or InvalidInstanceStateError while it is active.
        """
        ...

    def purge_instances(self, query: InstanceQuery) -> int:
        """Delete every finished instance matching ``query`` (skipping active ones); the count."""
        ...

    def batch(self, calls: Sequence[Callable[[], Any]]) -> list[Outcome]:
        """Run ``calls`` (each a call of one of this store's methods) in order, in one
        transaction where possible (group commit), and return each one's outcome: what it would
        have returned or raised run alone. If the shared transaction fails, each call runs again
        in its own, so that a failure is the failing call's alone.
        """
        ...

    def batch_now(self, calls: Sequence[Callable[[], Any]]) -> list[Outcome] | None:
        """Run ``calls`` as :meth:`batch` does, on this thread, if that needs no waiting on
        another writer's lock, nor on I/O unless ``lone_calls_inline``; None when it would, or
        a call failed (nothing is written then): run :meth:`batch` where waiting blocks nobody.
        """
        ...

    def close(self) -> None:
        """Release connections and locks."""
        ...
