"""The multi-statement writes of SqlStore: starting instances, applying a step, rewinding.

Every method runs inside the caller's transaction (``tx``) and is all or nothing with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from durafn.errors import InstanceExistsError, InstanceNotFoundError, InvalidInstanceStateError
from durafn.models import FINAL_STATUSES, FailureDetails, OrchestrationRuntimeStatus
from durafn.replay.history import (
    ExecutionStarted,
    HistoryEvent,
    SubOrchestrationInstanceFailed,
    encode_event,
)
from durafn.store.base import (
    ActivityWorkItem,
    NewActivity,
    NewSubOrchestration,
    StepCommit,
    Work,
)
from durafn.store.dialect import Dialect
from durafn.store.driver import Pending, Tx
from durafn.store.statements import HISTORY_ROW_KEYS, Statements


@dataclass(frozen=True)
class Start:
    """An instance to start: from create_instance or a step's sub-orchestration."""

    instance_id: str
    name: str
    input: str | None
    execution_id: str
    parent_instance_id: str | None = None
    parent_task_id: int | None = None

    def event(self, now: datetime) -> ExecutionStarted:
        """The ExecutionStarted event that begins its history."""
        return ExecutionStarted(
            timestamp=now,
            name=self.name,
            input=self.input,
            execution_id=self.execution_id,
            parent_instance_id=self.parent_instance_id,
            parent_task_id=self.parent_task_id,
        )


class StepWriter:
    """Starts instances and applies steps, with one dialect's statements."""

    def __init__(self, dialect: Dialect, sql: Statements) -> None:
        self._dialect = dialect
        self._sql = sql

    def message_row(
        self, instance_id: str, event: HistoryEvent, visible_at: datetime, execution_id: str | None
    ) -> dict[str, Any]:
        """The inbox row of a message."""
        return {
            "instance_id": instance_id,
            "execution_id": execution_id,
            "event_type": event.event_type,
            "event": encode_event(event),
            "visible_at": self._dialect.ts(visible_at),
        }

    def insert_history(
        self, tx: Tx, instance_id: str, first_seq: int, events: Sequence[HistoryEvent]
    ) -> None:
        """Append ``events`` to the history, numbered from ``first_seq``."""
        bound = len(HISTORY_ROW_KEYS)
        for start in range(0, len(events), bound):
            chunk = events[start : start + bound]
            params: dict[str, Any] = {"instance_id": instance_id}
            for n, ((seq_key, type_key, event_key), event) in enumerate(
                zip(HISTORY_ROW_KEYS, chunk, strict=False)
            ):
                params[seq_key] = first_seq + start + n
                params[type_key] = event.event_type
                params[event_key] = encode_event(event)
            tx.run(self._sql.insert_history[len(chunk) - 1], params)

    def insert_activities(
        self,
        tx: Tx,
        instance_id: str,
        execution_id: str,
        work: Sequence[NewActivity],
        now: datetime,
        lease: tuple[str, datetime, int] | None = None,
    ) -> list[Pending]:
        """Create activity work items; ``lease`` (owner, until, how many) leases the first ones
        to their runner, and the replies of their inserts (an ActivityWorkItem's fields each)
        are returned.
        """
        owner, until, leased = lease if lease is not None else (None, None, 0)
        rows = [
            {
                "instance_id": instance_id,
                "execution_id": execution_id,
                "task_id": a.task_id,
                "name": a.name,
                "input": a.input,
                "lease_owner": owner if n < leased else None,
                "lease_until": self._dialect.ts(until) if n < leased and until else None,
                "attempt": 1 if n < leased else 0,
                "now": self._dialect.ts(now),
            }
            for n, a in enumerate(work)
        ]
        items = [tx.later(self._sql.insert_leased_activity, row) for row in rows[:leased]]
        tx.many(self._sql.insert_activity, rows[leased:])
        return items

    def delete_owned(self, tx: Tx, instance_ids: Sequence[str]) -> None:
        """Delete the history, inbox and activities of these instances."""
        ids = {"ids": self._dialect.ids(instance_ids)}
        for stmt in self._sql.delete_owned:
            tx.run(stmt, ids)

    def start_instances(
        self,
        tx: Tx,
        starts: Sequence[Start],
        now: datetime,
        lease: tuple[str, datetime] | None = None,
        *,
        message: bool = True,
    ) -> set[str]:
        """Insert each instance, or replace it if finished, with an ExecutionStarted message
        (``message=False``: without, for a step that processes it at once); ``lease`` (owner,
        until) leases them to their starter.

        Returns the ids that started; the others are active and were left untouched. The
        database decides (unique key + ON CONFLICT ... WHERE finished), so of concurrent starts
        of one id exactly one wins.
        """
        started: list[Start] = []
        replaced: list[str] = []
        for s in starts:
            row = tx.one(self._sql.upsert, self._upsert_params(s, now, lease))
            if row is not None:
                started.append(s)
                if not row[1]:
                    replaced.append(s.instance_id)
        if replaced:  # what the replaced, finished instances left behind
            self.delete_owned(tx, sorted(replaced))
        if message:
            self._insert_started(tx, started, now)
        return {s.instance_id for s in started}

    def start(
        self,
        tx: Tx,
        start: Start,
        now: datetime,
        lease: tuple[str, datetime] | None = None,
        *,
        message: bool = True,
        read_reply: bool = False,
    ) -> None:
        """Start one instance (see start_instances); InstanceExistsError if its id is active.

        Where the driver pipelines and ``read_reply`` is False, nothing waits for the server:
        the start inserts a new id, and an id that is taken fails the whole transaction with
        Refused; its caller reruns it with ``read_reply``, which replaces a finished instance
        or names the active one's status.
        """
        if tx.wait is None or read_reply:
            if not self.start_instances(tx, [start], now, lease, message=message):
                status = tx.scalar(self._sql.status, {"iid": start.instance_id})
                raise InstanceExistsError(start.instance_id, status or "active")
            return
        tx.run(self._sql.start_or_refuse, self._upsert_params(start, now, lease))
        if message:
            self._insert_started(tx, [start], now)

    def _upsert_params(
        self,
        start: Start,
        now: datetime,
        lease: tuple[str, datetime] | None,
        first_step: StepCommit | None = None,
    ) -> dict[str, Any]:
        """The row of a started instance; with ``first_step``, as that step leaves it."""
        owner, until = lease if lease is not None else (None, None)
        return {
            "instance_id": start.instance_id,
            "name": start.name,
            "execution_id": start.execution_id,
            "status": (
                first_step.status if first_step else OrchestrationRuntimeStatus.Pending
            ).value,
            "output": first_step.output if first_step else None,
            "custom_status": first_step.custom_status if first_step else None,
            "count": len(first_step.history) if first_step else 0,
            "input": start.input,
            "now": self._dialect.ts(now),
            "parent_instance_id": start.parent_instance_id,
            "parent_task_id": start.parent_task_id,
            "lease_owner": owner,
            "lease_until": None if until is None else self._dialect.ts(until),
        }

    def _insert_started(self, tx: Tx, started: Sequence[Start], now: datetime) -> None:
        """The ExecutionStarted messages of instances just started."""
        rows = [self.message_row(s.instance_id, s.event(now), now, s.execution_id) for s in started]
        tx.many(self._sql.insert_inbox, rows)

    def apply_step(
        self, tx: Tx, c: StepCommit, now: datetime, *, read_start: bool = False
    ) -> list[ActivityWorkItem] | None:
        """Write everything ``c`` changes; None, with nothing written, if it is refused (or
        Refused raised by the driver, where it sends the writes before the guard's reply, or
        before the reply to the start of ``c.new_instance`` unless ``read_start``).
        """
        direct = c.activity_result is not None
        if direct and c.history_length is None:
            raise ValueError("a step on an activity result must give the history_length it is on")
        children = {s.instance_id for s in c.sub_orchestrations}
        targets = {m.instance_id for m in c.messages} - children - {c.instance_id}
        if children or targets:
            self._dialect.lock_instances(tx, [c.instance_id, *children], list(targets))
        start = None
        if c.new_instance is not None:
            start = Start(c.instance_id, c.new_instance.name, c.new_instance.input, c.execution_id)
        held = (c.worker_id, c.lease_until or now)
        if start is not None and tx.wait is not None and not read_start and not c.new_execution_id:
            # A new id (or the whole transaction is refused) is inserted as its first step leaves
            # it: a row nobody else could have seen needs no guard, nor an update of its status.
            params = self._upsert_params(start, now, None if c.release else held, first_step=c)
            tx.run(self._sql.start_or_refuse, params)
            length = len(c.history)
        else:
            if start is not None:
                self.start(tx, start, now, held, message=False, read_reply=read_start)
            guard = self._guard(tx, c, now)
            if guard.ready or c.history_length is None:
                length = guard.scalar()
                if length is None:
                    return None
            else:  # the writes go out before the guard's reply; a refusal fails them on the server
                length = c.history_length + len(c.history)
        pending = self._write_step(tx, c, now, length)
        leased: list[ActivityWorkItem] = []
        tx.on_replies(lambda: leased.extend(ActivityWorkItem(*item.one()) for item in pending))
        tx.announce(c.work(now))
        return leased

    def _guard(self, tx: Tx, c: StepCommit, now: datetime) -> Pending:
        """Send the UPDATE of the instance row that admits the step: its reply is the new
        history length, or no row when the step is refused.
        """
        guard = self._sql.guards[
            c.new_execution_id is not None,
            c.release,
            c.activity_result is not None,
            c.history_length is not None,
            c.status is OrchestrationRuntimeStatus.Running,
        ]
        return tx.later(
            guard,
            {
                "iid": c.instance_id,
                "worker": c.worker_id,
                "eid": c.execution_id,
                "base": c.history_length,
                "activity": c.activity_result,
                "status": c.status.value,
                "output": c.output,
                "custom_status": c.custom_status,
                "now": self._dialect.ts(now),
                "count": len(c.history),
                "new_eid": c.new_execution_id,
                "new_input": c.new_input,
            },
        )

    def _write_step(self, tx: Tx, c: StepCommit, now: datetime, length: int) -> list[Pending]:
        """The step's writes after the guard, with history ending at ``length``; the inserts of
        the activities leased to the committer, whose replies the caller reads.
        """
        sql = self._sql
        own = {"iid": c.instance_id}
        if c.activity_result is not None and sql.take_activity is not None:
            tx.run(sql.take_activity, {"id": c.activity_result})
        new_execution = c.new_execution_id is not None
        execution_id = c.new_execution_id or c.execution_id
        if new_execution:
            for stmt in sql.delete_old_execution:
                tx.run(stmt, own)
        if c.consumed:
            tx.run(sql.delete_consumed, {**own, "ids": self._dialect.ids(c.consumed)})
        if c.history:
            self.insert_history(tx, c.instance_id, length - len(c.history), c.history)
        leased: list[Pending] = []
        if c.activities:
            lease = None
            if c.lease_activities and c.lease_until is not None:
                lease = (c.worker_id, c.lease_until, c.lease_activities)
            leased = self.insert_activities(
                tx, c.instance_id, execution_id, c.activities, now, lease
            )
        self._start_children(tx, c, execution_id, now)
        self._send(tx, c, now)
        if new_execution:
            last = tx.scalar(sql.max_inbox_id)
            tx.run(sql.requeue_buffered, own)
            tx.run(sql.delete_requeued, {**own, "max": last})
        if c.status in FINAL_STATUSES:
            for stmt in sql.delete_unfinished_work:
                tx.run(stmt, own)
        return leased

    def rewind(
        self,
        tx: Tx,
        instance_id: str,
        history_length: int,
        events: list[HistoryEvent],
        work: list[NewActivity],
        now: datetime,
    ) -> None:
        """Make a Failed instance Running with ``events`` as its history (see Store)."""
        owner = tx.one(self._sql.owner, {"iid": instance_id})
        if owner is None:
            raise InstanceNotFoundError(instance_id)
        changed = tx.count(
            self._sql.rewind,
            {
                "iid": instance_id,
                "running": OrchestrationRuntimeStatus.Running.value,
                "failed": OrchestrationRuntimeStatus.Failed.value,
                "length": history_length,
                "count": len(events),
                "now": self._dialect.ts(now),
            },
        )
        if changed != 1:
            raise InvalidInstanceStateError(instance_id, owner[0], "rewind")
        tx.run(self._sql.delete_history, {"iid": instance_id})
        self.insert_history(tx, instance_id, 0, events)
        if work:
            self.insert_activities(tx, instance_id, owner[1], work, now)
            tx.announce(Work.ACTIVITIES)

    def _start_children(self, tx: Tx, c: StepCommit, execution_id: str, now: datetime) -> None:
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
        started = self.start_instances(tx, starts, now)
        refused = [
            s
            for s in c.sub_orchestrations
            if s.instance_id not in started or first[s.instance_id] is not s
        ]
        if not refused:
            return
        ids = self._dialect.ids(sorted({s.instance_id for s in refused}))
        statuses = dict(tx.rows(self._sql.statuses, {"ids": ids}))
        messages = []
        for sub in refused:
            error = InstanceExistsError(sub.instance_id, statuses.get(sub.instance_id, "active"))
            failure = FailureDetails("InstanceExistsError", str(error), function=sub.name)
            event = SubOrchestrationInstanceFailed(
                timestamp=now, task_id=sub.parent_task_id, failure=failure
            )
            messages.append(self.message_row(c.instance_id, event, now, execution_id))
        tx.many(self._sql.insert_inbox, messages)

    def _send(self, tx: Tx, c: StepCommit, now: datetime) -> None:
        """Insert the step's messages; those to a missing or finished instance are dropped."""
        if not c.messages:
            return
        alive = {c.instance_id}
        targets = sorted({m.instance_id for m in c.messages} - alive)
        if targets:
            # apply_step locked the targets: one finishing concurrently waits for this commit,
            # then deletes what was added, as it does with its whole inbox.
            found = tx.rows(self._sql.alive, {"ids": self._dialect.ids(targets)})
            alive.update(row[0] for row in found)
        tx.many(
            self._sql.insert_inbox,
            [
                self.message_row(m.instance_id, m.event, m.visible_at or now, m.execution_id)
                for m in c.messages
                if m.instance_id in alive
            ],
        )
