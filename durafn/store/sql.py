"""SqlStore: the one Store implementation, on SQLAlchemy Core, for SQLite and PostgreSQL.

Every fixed statement is plain SQL (``statements.py``) run on DB-API connections
(``driver.py``) with few round trips: a claim is one ``UPDATE ... RETURNING`` plus one SELECT of
the claimed instances' messages, a step is one guarded UPDATE plus bulk inserts (``writes.py``).
SQLAlchemy creates the schema and builds the ad-hoc instance queries. What the two databases do
differently (row locks, parameter and time formats, which errors are worth a retry, the host
lock) is a :class:`~durafn.store.dialect.Dialect`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, select, text

from durafn.errors import (
    DurafnError,
    InstanceNotFoundError,
    InvalidInstanceStateError,
)
from durafn.models import FINAL_STATUSES, InstanceQuery, OrchestrationRuntimeStatus
from durafn.replay.history import HistoryEvent, decode_event
from durafn.store import queries
from durafn.store.base import (
    CONTROL_EVENT_TYPES,
    SCHEDULE_RUNS_KEPT,
    ActivityWorkItem,
    InstanceRecord,
    Message,
    NewActivity,
    OrchestrationWorkItem,
    Outcome,
    StepCommit,
    Work,
    WorkListener,
)
from durafn.store.clock import Clock
from durafn.store.dialect import READ_ONLY, Dialect
from durafn.store.driver import Connections, Refused, Tx
from durafn.store.migrations import ensure_schema
from durafn.store.schema import instances
from durafn.store.statements import Statements, instance_record
from durafn.store.writes import Start, StepWriter

T = TypeVar("T")
CLOCK_SAMPLES = 3
"""Round trips clock_offset makes; the quickest one's reading is kept."""
SAVEPOINTS_PER_GROUP = 64
"""Calls per careful group at most: each is a subtransaction, and a PostgreSQL transaction
with more than 64 of them makes every other session's snapshot checks slower while it is open."""
_SUSPENDED = OrchestrationRuntimeStatus.Suspended
log = logging.getLogger("durafn.store")


def _outcome(call: Callable[[], Any], caught: type[Exception]) -> Outcome:
    """Run ``call``, catching ``caught`` into the outcome."""
    try:
        return Outcome(call())
    except caught as error:
        return Outcome(error=error)


class SqlStore:
    """The Store on SQLite or PostgreSQL; see :class:`durafn.store.base.Store` for the semantics."""

    def __init__(self, url: str, engine: Engine, dialect: Dialect) -> None:
        self.url = url
        self._engine = engine
        self._reader = engine.execution_options(**{READ_ONLY: True})
        self._dialect = dialect
        self._sql = Statements(dialect)
        self._writer = StepWriter(dialect, self._sql)
        self._connections = Connections(dialect)
        self.immediate = dialect.immediate
        self.lone_calls_inline = dialect.lone_calls_inline
        try:
            ensure_schema(engine, dialect, engine.url.render_as_string(hide_password=True))
        except BaseException:
            self.close()
            raise

    # -- transactions ----------------------------------------------------------------------------

    def _write(self, op: Callable[[Tx], T]) -> T:
        """Run ``op`` in one write transaction (rerun after a deadlock)."""
        return self._connections.transaction(op)

    def _write_start(self, op: Callable[[Tx, bool], T]) -> T:
        """Run ``op``, which starts an instance, with its start sent unread; when the server
        refuses that (the id is taken), rerun it reading the reply, so a finished instance is
        replaced and an active one named in InstanceExistsError (see StepWriter.start).
        """
        try:
            return self._write(lambda tx: op(tx, False))
        except Refused:
            return self._write(lambda tx: op(tx, True))

    def _read_one(self, sql: str, params: dict[str, Any]) -> list[Any]:
        """Run one SELECT (a statement is consistent on its own) and fetch its rows."""
        return self._connections.transaction(lambda tx: tx.rows(sql, params), write=False)

    def _query(self, op: Callable[[Connection], T]) -> T:
        """Run an ad-hoc SQLAlchemy query (instance listings) on the engine."""
        with self._reader.connect() as conn:
            return op(conn)

    # -- instances -------------------------------------------------------------------------------

    def create_instance(
        self,
        instance_id: str,
        name: str,
        input: str | None,
        execution_id: str,
        now: datetime,
    ) -> None:
        """Create the instance as Pending with an ExecutionStarted message (see Store)."""
        start = Start(instance_id, name, input, execution_id)

        def op(tx: Tx, read_reply: bool) -> None:
            self._writer.start(tx, start, now, read_reply=read_reply)
            tx.announce(Work.ORCHESTRATIONS)

        self._write_start(op)

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        """Return the instance, or None when there is none with that id."""
        rows = self._read_one(self._sql.instance, {"iid": instance_id})
        return instance_record(rows[0], self._dialect.from_ts) if rows else None

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """Return the current execution's history in order ([] for an unknown instance)."""
        rows = self._read_one(self._sql.history, {"iid": instance_id})
        return [decode_event(row[0]) for row in rows]

    def query_instances(self, query: InstanceQuery) -> tuple[list[InstanceRecord], str | None]:
        """Return a page of matching instances and the next page's token (see Store)."""
        stmt = queries.page_select(query)
        rows = self._query(lambda conn: conn.execute(stmt).all())
        return queries.page_result(query, rows)

    # -- inbox and orchestration steps -----------------------------------------------------------

    def enqueue_message(
        self,
        instance_id: str,
        event: HistoryEvent,
        now: datetime,
        *,
        allowed: frozenset[OrchestrationRuntimeStatus],
        action: str,
    ) -> None:
        """Put ``event`` in the inbox if the instance's status is in ``allowed`` (see Store)."""

        def op(tx: Tx) -> None:
            owner = tx.one(self._sql.owner, {"iid": instance_id})
            if owner is None:
                raise InstanceNotFoundError(instance_id)
            if OrchestrationRuntimeStatus(owner[0]) not in allowed:
                raise InvalidInstanceStateError(instance_id, owner[0], action)
            # No execution id: events outlive continue-as-new (they are buffered, not dropped).
            tx.run(self._sql.insert_inbox, self._writer.message_row(instance_id, event, now, None))
            tx.announce(Work.ORCHESTRATIONS)

        self._write(op)

    def claim_orchestrations(
        self, worker_id: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[OrchestrationWorkItem]:
        """Lease up to ``limit`` instances with visible messages and no live lease (see Store)."""
        if limit < 1:
            return []
        return self._write(lambda tx: self._claim(tx, worker_id, now, lease_until, limit))

    def _claim(
        self, tx: Tx, worker_id: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[OrchestrationWorkItem]:
        sql, ts = self._sql, self._dialect.ts
        claimed = tx.rows(
            sql.claim_instances,
            {
                "now": ts(now),
                "worker": worker_id,
                "until": ts(lease_until),
                "limit": limit,
                "window": limit * self._dialect.claim_window,
            },
        )
        if not claimed:
            return []
        records = {row[0]: instance_record(row, self._dialect.from_ts) for row in claimed}
        ids = self._dialect.ids(list(records))
        rows = tx.rows(sql.messages, {"ids": ids, "now": ts(now)})
        messages: dict[str, list[Message]] = {}
        stale: list[int] = []
        for message_id, instance_id, execution_id, event_type, event in rows:
            record = records[instance_id]
            if execution_id is not None and execution_id != record.execution_id:
                stale.append(message_id)
            elif record.status is not _SUSPENDED or event_type in CONTROL_EVENT_TYPES:
                messages.setdefault(instance_id, []).append(
                    Message(id=message_id, event=decode_event(event))
                )
        if stale:
            tx.run(sql.delete_messages, {"ids": self._dialect.ids(stale)})
        # Defensive: an instance left with nothing to process is not handed out under a lease.
        idle = [instance_id for instance_id in records if instance_id not in messages]
        if idle:
            tx.run(sql.unlease, {"ids": self._dialect.ids(idle)})
        items = [OrchestrationWorkItem(records[i], found) for i, found in messages.items()]
        items.sort(key=lambda item: item.messages[0].id)
        return items

    def commit_step(self, commit: StepCommit, now: datetime) -> list[ActivityWorkItem] | None:
        """Apply one step atomically; the activities leased to the committer, or None (refused)."""

        def op(tx: Tx, read_start: bool) -> list[ActivityWorkItem] | None:
            return self._writer.apply_step(tx, commit, now, read_start=read_start)

        try:
            if commit.new_instance is None:
                return self._write(lambda tx: op(tx, False))
            return self._write_start(op)
        except Refused:
            return None

    def abandon_orchestration(self, instance_id: str, worker_id: str) -> None:
        """Give up a lease without consuming anything, so the messages are claimed again."""

        def op(tx: Tx) -> None:
            if tx.count(self._sql.abandon, {"iid": instance_id, "worker": worker_id}):
                tx.announce(Work.ORCHESTRATIONS)

        self._write(op)

    # -- activities ------------------------------------------------------------------------------

    def claim_activities(
        self, worker_id: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[ActivityWorkItem]:
        """Lease up to ``limit`` activity work items with no live lease, oldest first."""
        if limit < 1:
            return []
        ts = self._dialect.ts
        params = {"now": ts(now), "worker": worker_id, "until": ts(lease_until), "limit": limit}
        rows = self._write(lambda tx: tx.rows(self._sql.claim_activities, params))
        return sorted((ActivityWorkItem(*row) for row in rows), key=lambda item: item.id)

    def complete_activity(self, item: ActivityWorkItem, event: HistoryEvent, now: datetime) -> bool:
        """Delete the work item and put ``event`` in its instance's inbox (see Store)."""

        def op(tx: Tx) -> bool:
            # Lock the instance before touching the item: the order a finishing step uses too.
            owner = tx.one(self._sql.owner, {"iid": item.instance_id})
            if (
                owner is None
                or owner[1] != item.execution_id
                or OrchestrationRuntimeStatus(owner[0]) in FINAL_STATUSES
            ):
                return False
            if tx.one(self._sql.delete_activity, {"id": item.id}) is None:
                return False
            row = self._writer.message_row(item.instance_id, event, now, item.execution_id)
            tx.run(self._sql.insert_inbox, row)
            tx.announce(Work.ORCHESTRATIONS)
            return True

        return self._write(op)

    # -- leases, timers, purge -------------------------------------------------------------------

    def renew_leases(self, worker_id: str, lease_until: datetime) -> None:
        """Extend every lease ``worker_id`` holds (orchestrations and activities)."""
        self._set_leases(worker_id, lease_until)

    def release_leases(self, worker_id: str) -> None:
        """Drop every lease ``worker_id`` holds, so its work is claimable at once."""
        self._set_leases(worker_id, None)

    def _set_leases(self, worker_id: str | None, until: datetime | None) -> None:
        """Extend to ``until``, or drop (None), the leases of ``worker_id`` (None: of every
        holder) in both tables.
        """
        params = {"worker": worker_id, "until": None if until is None else self._dialect.ts(until)}

        def op(tx: Tx) -> None:
            changed = 0
            for table in ("instances", "activities"):
                stmt = self._sql.set_leases[table, worker_id is not None, until is not None]
                changed += tx.count(stmt, params)
            if changed and until is None:
                # Leases dropped make work claimable: the other hosts should look now.
                tx.announce(Work.ORCHESTRATIONS | Work.ACTIVITIES)

        self._write(op)

    def attach_host(self, worker_id: str) -> None:
        """Register a host; on SQLite take the file's host lock and free a dead host's leases."""
        if self._dialect.acquire_host():
            self._set_leases(None, None)

    def listen(self) -> WorkListener | None:
        """Subscribe to what other store objects on this database announce (see Store)."""
        return self._dialect.listen(self._engine)

    def clock_offset(self, host_clock: Clock) -> timedelta | None:
        """The server's clock minus ``host_clock`` at the middle of the quickest of a few round
        trips, so off by at most half of it; None where the dialect has no server clock.
        """
        sql = self._dialect.server_time
        if sql is None:
            return None
        statement = text(sql)

        def measure(conn: Connection) -> timedelta:
            readings = []
            for _ in range(CLOCK_SAMPLES):
                before = host_clock()
                server = self._dialect.from_ts(conn.execute(statement).scalar_one())
                after = host_clock()
                readings.append((after - before, server - (before + (after - before) / 2)))
            return min(readings)[1]

        return self._query(measure)

    def next_visible_time(self, now: datetime) -> datetime | None:
        """Return the earliest ``visible_at`` after ``now`` of any message (the next timer)."""
        rows = self._read_one(self._sql.next_visible, {"now": self._dialect.ts(now)})
        found = rows[0][0] if rows else None
        return None if found is None else self._dialect.from_ts(found)

    def claim_schedule_run(self, name: str, due: datetime, worker_id: str, now: datetime) -> bool:
        """Claim one run of a cron function for ``worker_id``; True for the one claim that
        makes it (see Store). The database's unique key decides between hosts.
        """
        ts = self._dialect.ts

        def op(tx: Tx) -> bool:
            tx.run(self._sql.forget_schedule_runs, {"before": ts(now - SCHEDULE_RUNS_KEPT)})
            claimed = {"name": name, "due": ts(due), "host": worker_id}
            return tx.one(self._sql.claim_schedule_run, claimed) is not None

        return self._write(op)

    def rewind_instance(
        self,
        instance_id: str,
        history_length: int,
        events: list[HistoryEvent],
        work: list[NewActivity],
        now: datetime,
    ) -> None:
        """Make a Failed instance Running with ``events`` as its history (see Store)."""
        self._write(
            lambda tx: self._writer.rewind(tx, instance_id, history_length, events, work, now)
        )

    def purge_instance(self, instance_id: str) -> int:
        """Delete a finished instance and everything it owns; returns 1 (see Store)."""

        def op(tx: Tx) -> int:
            if not tx.count(self._sql.purge_one, {"iid": instance_id}):
                status = tx.scalar(self._sql.status, {"iid": instance_id})
                if status is None:
                    raise InstanceNotFoundError(instance_id)
                raise InvalidInstanceStateError(instance_id, status, "purge")
            self._writer.delete_owned(tx, [instance_id])
            return 1

        return self._write(op)

    def purge_instances(self, query: InstanceQuery) -> int:
        """Delete every finished instance matching ``query`` (active ones skipped); the count."""
        stmt = select(instances.c.instance_id).where(*queries.filters(query), queries.IS_FINAL)
        candidates = self._query(lambda conn: list(conn.scalars(stmt)))
        if not candidates:
            return 0

        def op(tx: Tx) -> int:
            # Finished when listed but perhaps restarted since: the delete checks again.
            ids = {"ids": self._dialect.ids(candidates)}
            purged = [row[0] for row in tx.rows(self._sql.purge_many, ids)]
            if purged:
                self._writer.delete_owned(tx, purged)
            return len(purged)

        return self._write(op)

    def batch(self, calls: Sequence[Callable[[], Any]]) -> list[Outcome]:
        """Run ``calls`` in one transaction where possible (see Store.batch)."""
        if len(calls) > 1:
            try:
                return self._grouped(calls)
            except Exception as error:
                # A refusal the server raised (a start of a taken id, a step whose lease was
                # lost) failed every call with it: rerun them under savepoints, still grouped.
                if self._dialect.is_refusal(error):
                    return self._careful(calls)
                log.debug("a grouped transaction failed; running its calls one by one")
        return [_outcome(call, Exception) for call in calls]

    def _careful(self, calls: Sequence[Callable[[], Any]]) -> list[Outcome]:
        """``calls`` in groups of savepoints (see Connections.group), each group one by one
        if it fails for another reason than a refusal.
        """
        outcomes: list[Outcome] = []
        for start in range(0, len(calls), SAVEPOINTS_PER_GROUP):
            chunk = calls[start : start + SAVEPOINTS_PER_GROUP]
            try:
                outcomes += self._grouped(chunk, careful=True)
            except Exception:
                log.debug("a careful group failed; running its calls one by one")
                outcomes += [_outcome(call, Exception) for call in chunk]
        return outcomes

    def _grouped(
        self, calls: Sequence[Callable[[], Any]], *, wait: bool = True, careful: bool = False
    ) -> list[Outcome]:
        """``calls`` as one transaction (see Connections.group)."""
        with self._connections.group(wait, careful):
            # A method that refuses (raises DurafnError) has written nothing, so the others'
            # writes stand; any other error undoes the whole group.
            return [_outcome(call, DurafnError) for call in calls]

    def batch_now(self, calls: Sequence[Callable[[], Any]]) -> list[Outcome] | None:
        """Run ``calls`` in one transaction at once, or None (see Store.batch_now)."""
        if not (self.immediate or self.lone_calls_inline):
            return None
        try:
            return self._grouped(calls, wait=False)
        except Exception:
            # another writer holds the lock, or a call failed: batch waits, or sorts the calls
            # out one by one, and the group's rollback has left nothing behind
            log.debug("a group could not run at once; it goes to batch")
            return None

    def close(self) -> None:
        """Release connections and the host lock; the store is unusable afterwards."""
        self._connections.close()
        self._engine.dispose()
        self._dialect.close()
