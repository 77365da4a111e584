"""The multi-statement writes of SqlStore: starting instances, applying a step, rewinding.

Statements are built once, with bound parameters, so the hot path only binds and executes them.
Every method runs inside the caller's transaction (``conn``) and is all or nothing with it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Insert,
    Integer,
    Update,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

from durafn.errors import InstanceExistsError, InstanceNotFoundError, InvalidInstanceStateError
from durafn.models import FailureDetails, OrchestrationRuntimeStatus
from durafn.replay.history import (
    ExecutionStarted,
    HistoryEvent,
    SubOrchestrationInstanceFailed,
    encode_event,
)
from durafn.store.base import NewActivity, NewSubOrchestration, StepCommit, Work
from durafn.store.dialect import Dialect
from durafn.store.queries import FINAL_STATUSES, ID, IDS, IS_FINAL, IS_LIVE, NOW
from durafn.store.schema import activities, history, inbox, instances

T = TypeVar("T")
CHUNK = 500
"""Rows per IN list: well under SQLite's bound-parameter limit."""


INSERT_INBOX = insert(inbox)
INSERT_HISTORY = insert(history)
INSERT_ACTIVITIES = insert(activities)

_DELETE_OWNED = [delete(t).where(t.c.instance_id.in_(IDS)) for t in (history, inbox, activities)]
_DELETE_CONSUMED = delete(inbox).where(inbox.c.instance_id == ID, inbox.c.id.in_(IDS))
# Continue-as-new: the old execution's history, work and timers go; buffered events stay.
_DELETE_OLD_EXECUTION = [
    delete(history).where(history.c.instance_id == ID),
    delete(activities).where(activities.c.instance_id == ID),
    delete(inbox).where(inbox.c.instance_id == ID, inbox.c.execution_id.is_not(None)),
]
# Continue-as-new: events that arrived during the old execution but were not consumed go behind
# the events it carried over, so the new execution still receives every event in arrival order.
_BUFFERED = (inbox.c.instance_id == ID) & inbox.c.execution_id.is_(None)
_MOVED = [
    inbox.c.instance_id,
    inbox.c.execution_id,
    inbox.c.event_type,
    inbox.c.event,
    inbox.c.visible_at,
]
_REQUEUE_BUFFERED = insert(inbox).from_select(
    [c.name for c in _MOVED], select(*_MOVED).where(_BUFFERED).order_by(inbox.c.id)
)
_DELETE_REQUEUED = delete(inbox).where(_BUFFERED, inbox.c.id <= bindparam("b_max", type_=Integer()))
_MAX_INBOX_ID = select(func.max(inbox.c.id))
_DELETE_UNFINISHED_WORK = [delete(t).where(t.c.instance_id == ID) for t in (inbox, activities)]
_ALIVE = select(instances.c.instance_id).where(instances.c.instance_id.in_(IDS), IS_LIVE)
_STATUSES = select(instances.c.instance_id, instances.c.status).where(
    instances.c.instance_id.in_(IDS)
)


def _guard(new_execution: bool, release: bool) -> Update:
    """The step's first statement: update the instance if the lease and execution still hold."""
    count = bindparam("b_count", type_=Integer())
    values: dict[str, Any] = {
        "status": bindparam("b_status"),
        "output": bindparam("b_output"),
        "custom_status": bindparam("b_custom_status"),
        "last_updated_time": NOW,
        "history_length": count if new_execution else instances.c.history_length + count,
    }
    if new_execution:
        values.update(execution_id=bindparam("b_new_eid"), input=bindparam("b_new_input"))
    if release:
        values.update(lease_owner=None, lease_until=None)
    return (
        update(instances)
        .where(
            instances.c.instance_id == ID,
            instances.c.lease_owner == bindparam("b_worker"),
            instances.c.execution_id == bindparam("b_eid"),
        )
        .values(values)
        .returning(instances.c.history_length)
    )


_GUARDS = {
    (new, release): _guard(new, release) for new in (False, True) for release in (False, True)
}


@dataclass(frozen=True)
class Start:
    """An instance to start: from create_instance or a step's sub-orchestration."""

    instance_id: str
    name: str
    input: str | None
    execution_id: str
    parent_instance_id: str | None = None
    parent_task_id: int | None = None


def chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """Yield ``items`` in slices of at most CHUNK."""
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def message_row(
    instance_id: str, event: HistoryEvent, visible_at: datetime, execution_id: str | None
) -> dict[str, Any]:
    """Return the inbox row of a message."""
    return {
        "instance_id": instance_id,
        "execution_id": execution_id,
        "event_type": event.event_type,
        "event": encode_event(event),
        "visible_at": visible_at,
    }


def history_rows(
    instance_id: str, first_seq: int, events: Sequence[HistoryEvent]
) -> list[dict[str, Any]]:
    """The history rows of ``events``, numbered from ``first_seq``."""
    return [
        {
            "instance_id": instance_id,
            "seq": first_seq + n,
            "event_type": event.event_type,
            "event": encode_event(event),
        }
        for n, event in enumerate(events)
    ]


def activity_rows(
    instance_id: str, execution_id: str, work: Sequence[NewActivity], now: datetime
) -> list[dict[str, Any]]:
    """The activity work-item rows of ``work``, not yet claimed."""
    return [
        {
            "instance_id": instance_id,
            "execution_id": execution_id,
            "task_id": a.task_id,
            "name": a.name,
            "input": a.input,
            "attempt": 0,
            "created_time": now,
        }
        for a in work
    ]


def delete_owned(conn: Connection, instance_ids: Sequence[str]) -> None:
    """Delete the history, inbox and activities of these instances."""
    for chunk in chunks(instance_ids):
        for stmt in _DELETE_OWNED:
            conn.execute(stmt, {"b_ids": list(chunk)})


def step_work(c: StepCommit, now: datetime) -> Work:
    """The work a step adds for other hosts: activities, messages due now, timers."""
    work = Work.ACTIVITIES if c.activities else Work.NONE
    if c.sub_orchestrations:
        work |= Work.ORCHESTRATIONS
    for m in c.messages:
        work |= (
            Work.TIMERS if m.visible_at is not None and m.visible_at > now else Work.ORCHESTRATIONS
        )
    return work


class StepWriter:
    """Starts instances and applies steps, with the statements of one dialect built once."""

    def __init__(self, dialect: Dialect) -> None:
        upsert = dialect.insert(instances)
        # The unique key decides: a live row makes the WHERE false, so its id is not returned.
        self._upsert: Insert = upsert.on_conflict_do_update(
            index_elements=[instances.c.instance_id],
            set_={c.name: upsert.excluded[c.name] for c in instances.c if not c.primary_key},
            where=IS_FINAL,
        ).returning(instances.c.instance_id)
        self._dialect = dialect
        self.owner = dialect.lock_shared(
            select(instances.c.status, instances.c.execution_id).where(
                instances.c.instance_id == ID
            )
        )
        """The instance's status and execution, held against a concurrent step until commit."""

    def start_instances(self, conn: Connection, starts: Sequence[Start], now: datetime) -> set[str]:
        """Insert each instance, or replace it if finished, with an ExecutionStarted message.

        Returns the ids that started; the others are active and were left untouched. The
        database decides (unique key + ON CONFLICT ... WHERE finished), so of concurrent starts
        of one id exactly one wins.
        """
        rows = [
            {
                "instance_id": s.instance_id,
                "name": s.name,
                "execution_id": s.execution_id,
                "status": OrchestrationRuntimeStatus.Pending.value,
                "input": s.input,
                "output": None,
                "custom_status": None,
                "created_time": now,
                "last_updated_time": now,
                "parent_instance_id": s.parent_instance_id,
                "parent_task_id": s.parent_task_id,
                "history_length": 0,
                "lease_owner": None,
                "lease_until": None,
            }
            for s in starts
        ]
        started = set(conn.scalars(self._upsert, rows))
        if not started:
            return started
        delete_owned(conn, sorted(started))  # what a replaced, finished instance left behind
        messages = [
            message_row(
                s.instance_id,
                ExecutionStarted(
                    timestamp=now,
                    name=s.name,
                    input=s.input,
                    execution_id=s.execution_id,
                    parent_instance_id=s.parent_instance_id,
                    parent_task_id=s.parent_task_id,
                ),
                now,
                s.execution_id,
            )
            for s in starts
            if s.instance_id in started
        ]
        conn.execute(INSERT_INBOX, messages)
        return started

    def apply_step(self, conn: Connection, c: StepCommit, now: datetime) -> bool:
        """Write everything ``c`` changes; False, with nothing written, if its lease is lost."""
        new_execution = c.new_execution_id is not None
        children = {s.instance_id for s in c.sub_orchestrations}
        targets = {m.instance_id for m in c.messages} - children - {c.instance_id}
        if children or targets:
            self._dialect.lock_instances(conn, [c.instance_id, *children], list(targets))
        # The guard comes first, so a lost lease returns before anything is written.
        length = conn.scalar(
            _GUARDS[new_execution, c.release],
            {
                "b_iid": c.instance_id,
                "b_worker": c.worker_id,
                "b_eid": c.execution_id,
                "b_status": c.status.value,
                "b_output": c.output,
                "b_custom_status": c.custom_status,
                "b_now": now,
                "b_count": len(c.history),
                "b_new_eid": c.new_execution_id,
                "b_new_input": c.new_input,
            },
        )
        if length is None:
            return False
        own = {"b_iid": c.instance_id}
        execution_id = c.new_execution_id or c.execution_id
        if new_execution:
            for stmt in _DELETE_OLD_EXECUTION:
                conn.execute(stmt, own)
        for chunk in chunks(c.consumed):
            conn.execute(_DELETE_CONSUMED, {"b_iid": c.instance_id, "b_ids": list(chunk)})
        if c.history:
            conn.execute(
                INSERT_HISTORY, history_rows(c.instance_id, length - len(c.history), c.history)
            )
        if c.activities:
            conn.execute(
                INSERT_ACTIVITIES, activity_rows(c.instance_id, execution_id, c.activities, now)
            )
        self._start_children(conn, c, execution_id, now)
        self._send(conn, c, now)
        if new_execution:
            last = conn.scalar(_MAX_INBOX_ID)
            conn.execute(_REQUEUE_BUFFERED, own)
            conn.execute(_DELETE_REQUEUED, {**own, "b_max": last})
        if c.status in FINAL_STATUSES:
            for stmt in _DELETE_UNFINISHED_WORK:
                conn.execute(stmt, own)
        self._dialect.announce(conn, step_work(c, now))
        return True

    def rewind(
        self,
        conn: Connection,
        instance_id: str,
        history_length: int,
        events: list[HistoryEvent],
        work: list[NewActivity],
        now: datetime,
    ) -> None:
        """Make a Failed instance Running with ``events`` as its history (see Store)."""
        owner = conn.execute(self.owner, {"b_iid": instance_id}).first()
        if owner is None:
            raise InstanceNotFoundError(instance_id)
        changed = conn.execute(
            update(instances)
            .where(
                instances.c.instance_id == instance_id,
                instances.c.status == OrchestrationRuntimeStatus.Failed.value,
                instances.c.history_length == history_length,
            )
            .values(
                status=OrchestrationRuntimeStatus.Running.value,
                output=None,
                history_length=len(events),
                last_updated_time=now,
                lease_owner=None,
                lease_until=None,
            )
        )
        if changed.rowcount != 1:
            raise InvalidInstanceStateError(instance_id, owner.status, "rewind")
        conn.execute(delete(history).where(history.c.instance_id == instance_id))
        if events:
            conn.execute(INSERT_HISTORY, history_rows(instance_id, 0, events))
        if work:
            conn.execute(
                INSERT_ACTIVITIES, activity_rows(instance_id, owner.execution_id, work, now)
            )
            self._dialect.announce(conn, Work.ACTIVITIES)

    def _start_children(
        self, conn: Connection, c: StepCommit, execution_id: str, now: datetime
    ) -> None:
        """Start the step's sub-orchestrations; each one already active fails its parent task."""
        if not c.sub_orchestrations:
            return
        # The first request for a child id is the one made; a repeat in the same step is refused.
        first: dict[str, NewSubOrchestration] = {}
        for sub in c.sub_orchestrations:
            first.setdefault(sub.instance_id, sub)
        starts = [
            Start(s.instance_id, s.name, s.input, s.execution_id, c.instance_id, s.parent_task_id)
            for s in first.values()
        ]
        started = self.start_instances(conn, starts, now)
        refused = [
            s
            for s in c.sub_orchestrations
            if s.instance_id not in started or first[s.instance_id] is not s
        ]
        if not refused:
            return
        statuses: dict[str, str] = {}
        for chunk in chunks(sorted({s.instance_id for s in refused})):
            rows = conn.execute(_STATUSES, {"b_ids": list(chunk)})
            statuses.update((row.instance_id, row.status) for row in rows)
        messages = []
        for sub in refused:
            error = InstanceExistsError(sub.instance_id, statuses.get(sub.instance_id, "active"))
            failure = FailureDetails("InstanceExistsError", str(error), function=sub.name)
            event = SubOrchestrationInstanceFailed(
                timestamp=now, task_id=sub.parent_task_id, failure=failure
            )
            messages.append(message_row(c.instance_id, event, now, execution_id))
        conn.execute(INSERT_INBOX, messages)

    def _send(self, conn: Connection, c: StepCommit, now: datetime) -> None:
        """Insert the step's messages; those to a missing or finished instance are dropped."""
        if not c.messages:
            return
        alive = {c.instance_id}
        targets = sorted({m.instance_id for m in c.messages} - alive)
        for chunk in chunks(targets):
            # apply_step locked the targets: one finishing concurrently waits for this commit,
            # then deletes what was added, as it does with its whole inbox.
            alive.update(conn.scalars(_ALIVE, {"b_ids": list(chunk)}))
        rows = [
            message_row(m.instance_id, m.event, m.visible_at or now, m.execution_id)
            for m in c.messages
            if m.instance_id in alive
        ]
        if rows:
            conn.execute(INSERT_INBOX, rows)
