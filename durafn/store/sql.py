"""SqlStore: the one Store implementation, on SQLAlchemy Core, for SQLite and PostgreSQL.

The hot paths are Core statements built once and run with few round trips: a claim is one
``UPDATE ... RETURNING`` plus one SELECT of the claimed instances' messages, a step is one guarded
UPDATE plus bulk inserts (``writes.py``). What the two databases do differently (row locks, the
upsert construct, which errors are worth a retry, the host lock) is a
:class:`~durafn.store.dialect.Dialect`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import BindParameter, Connection, Engine, bindparam, delete, func, select, update
from sqlalchemy.exc import DBAPIError

from durafn.errors import InstanceExistsError, InstanceNotFoundError, InvalidInstanceStateError
from durafn.models import InstanceQuery, OrchestrationRuntimeStatus
from durafn.replay.history import HistoryEvent, decode_event
from durafn.store import queries
from durafn.store.base import (
    CONTROL_EVENT_TYPES,
    ActivityWorkItem,
    InstanceRecord,
    Message,
    NewActivity,
    OrchestrationWorkItem,
    StepCommit,
    Work,
    WorkListener,
)
from durafn.store.dialect import READ_ONLY, Dialect
from durafn.store.migrations import ensure_schema
from durafn.store.queries import FINAL_VALUES, ID, IDS, IS_FINAL, NOW, lease_free
from durafn.store.schema import UtcDateTime, activities, history, inbox, instances
from durafn.store.writes import (
    INSERT_INBOX,
    Start,
    StepWriter,
    chunks,
    delete_owned,
    message_row,
)

T = TypeVar("T")
_RETRIES = 5

_WORKER: BindParameter[str] = bindparam("b_worker")
_UNTIL: BindParameter[datetime] = bindparam("b_until", type_=UtcDateTime())

_INSTANCE = select(instances).where(instances.c.instance_id == ID)
_STATUS = select(instances.c.status).where(instances.c.instance_id == ID)
_HISTORY = select(history.c.event).where(history.c.instance_id == ID).order_by(history.c.seq)
_MESSAGES = (
    select(inbox.c.id, inbox.c.instance_id, inbox.c.execution_id, inbox.c.event_type, inbox.c.event)
    .where(inbox.c.instance_id.in_(IDS), inbox.c.visible_at <= NOW)
    .order_by(inbox.c.id)
)
_DELETE_MESSAGES = delete(inbox).where(inbox.c.id.in_(IDS))
_UNLEASE = (
    update(instances)
    .where(instances.c.instance_id.in_(IDS))
    .values(lease_owner=None, lease_until=None)
)
_ABANDON = (
    update(instances)
    .where(instances.c.instance_id == ID, instances.c.lease_owner == _WORKER)
    .values(lease_owner=None, lease_until=None)
)
_DELETE_ACTIVITY = delete(activities).where(activities.c.id == ID)
_NEXT_VISIBLE = select(func.min(inbox.c.visible_at)).where(inbox.c.visible_at > NOW)
_PURGE_ONE = delete(instances).where(instances.c.instance_id == ID, IS_FINAL)


class SqlStore:
    """The Store on SQLAlchemy Core; see :class:`durafn.store.base.Store` for the semantics."""

    def __init__(self, url: str, engine: Engine, dialect: Dialect) -> None:
        self.url = url
        self._engine = engine
        self._reader = engine.execution_options(**{READ_ONLY: True})
        self._dialect = dialect
        self._writer = StepWriter(dialect)
        self._owner = self._writer.owner
        self._build_claims(dialect)
        try:
            ensure_schema(engine, dialect, engine.url.render_as_string(hide_password=True))
        except BaseException:
            self.close()
            raise

    def _build_claims(self, dialect: Dialect) -> None:
        """Build the dialect's claim statements: lock candidates, lease them, return them."""
        pick = instances.alias("picked")
        picked = dialect.lock_for_claim(
            select(pick.c.instance_id)
            .where(pick.c.instance_id.in_(queries.claimable_instances()), lease_free(pick))
            .limit(bindparam("b_limit"))
        )
        self._claim_instances = (
            update(instances)
            .where(instances.c.instance_id.in_(picked))
            .values(lease_owner=_WORKER, lease_until=_UNTIL)
            .returning(*instances.c)
        )
        work = activities.alias("picked")
        a = activities.c
        self._claim_activities = (
            update(activities)
            .where(
                a.id.in_(
                    dialect.lock_for_claim(
                        select(work.c.id)
                        .where(lease_free(work))
                        .order_by(work.c.id)
                        .limit(bindparam("b_limit"))
                    )
                )
            )
            .values(lease_owner=_WORKER, lease_until=_UNTIL, attempt=a.attempt + 1)
            .returning(a.id, a.instance_id, a.execution_id, a.task_id, a.name, a.input, a.attempt)
        )

    # -- transactions ----------------------------------------------------------------------------

    def _write(self, op: Callable[[Connection], T]) -> T:
        """Run ``op`` in one write transaction, rerunning it after a deadlock."""
        attempt = 1
        while True:
            try:
                with self._engine.begin() as conn:
                    return op(conn)
            except DBAPIError as error:
                if attempt >= _RETRIES or not self._dialect.is_retryable(error):
                    raise
                attempt += 1

    def _read(self, op: Callable[[Connection], T]) -> T:
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

        def op(conn: Connection) -> None:
            if not self._writer.start_instances(conn, [start], now):
                status = conn.scalar(_STATUS, {"b_iid": instance_id})
                raise InstanceExistsError(instance_id, status or "active")
            self._dialect.announce(conn, Work.ORCHESTRATIONS)

        self._write(op)

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        """Return the instance, or None when there is none with that id."""
        row = self._read(lambda conn: conn.execute(_INSTANCE, {"b_iid": instance_id}).first())
        return None if row is None else queries.to_record(row)

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """Return the current execution's history in order ([] for an unknown instance)."""
        texts = self._read(lambda conn: conn.scalars(_HISTORY, {"b_iid": instance_id}).all())
        return [decode_event(text) for text in texts]

    def query_instances(self, query: InstanceQuery) -> tuple[list[InstanceRecord], str | None]:
        """Return a page of matching instances and the next page's token (see Store)."""
        stmt = queries.page_select(query)
        rows = self._read(lambda conn: conn.execute(stmt).all())
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

        def op(conn: Connection) -> None:
            owner = conn.execute(self._owner, {"b_iid": instance_id}).first()
            if owner is None:
                raise InstanceNotFoundError(instance_id)
            if OrchestrationRuntimeStatus(owner.status) not in allowed:
                raise InvalidInstanceStateError(instance_id, owner.status, action)
            # No execution id: events outlive continue-as-new (they are buffered, not dropped).
            conn.execute(INSERT_INBOX, [message_row(instance_id, event, now, None)])
            self._dialect.announce(conn, Work.ORCHESTRATIONS)

        self._write(op)

    def claim_orchestrations(
        self, worker_id: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[OrchestrationWorkItem]:
        """Lease up to ``limit`` instances with visible messages and no live lease (see Store)."""
        if limit < 1:
            return []
        return self._write(lambda conn: self._claim(conn, worker_id, now, lease_until, limit))

    def _claim(
        self, conn: Connection, worker_id: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[OrchestrationWorkItem]:
        claimed = conn.execute(
            self._claim_instances,
            {
                "b_now": now,
                "b_worker": worker_id,
                "b_until": lease_until,
                "b_limit": limit,
                "b_window": limit * self._dialect.claim_window,
            },
        ).all()
        if not claimed:
            return []
        records = {row.instance_id: queries.to_record(row) for row in claimed}
        rows = conn.execute(_MESSAGES, {"b_ids": list(records), "b_now": now}).all()
        messages: dict[str, list[Message]] = {}
        stale: list[int] = []
        for row in rows:
            record = records[row.instance_id]
            if row.execution_id is not None and row.execution_id != record.execution_id:
                stale.append(row.id)
            elif (
                record.status is not OrchestrationRuntimeStatus.Suspended
                or row.event_type in CONTROL_EVENT_TYPES
            ):
                messages.setdefault(row.instance_id, []).append(
                    Message(id=row.id, event=decode_event(row.event))
                )
        for chunk in chunks(stale):
            conn.execute(_DELETE_MESSAGES, {"b_ids": list(chunk)})
        # Defensive: an instance left with nothing to process is not handed out under a lease.
        idle = [instance_id for instance_id in records if instance_id not in messages]
        if idle:
            conn.execute(_UNLEASE, {"b_ids": idle})
        items = [OrchestrationWorkItem(records[i], found) for i, found in messages.items()]
        items.sort(key=lambda item: item.messages[0].id)
        return items

    def commit_step(self, commit: StepCommit, now: datetime) -> bool:
        """Apply one step atomically; False, nothing written, if the lease or execution is lost."""
        return self._write(lambda conn: self._writer.apply_step(conn, commit, now))

    def abandon_orchestration(self, instance_id: str, worker_id: str) -> None:
        """Give up a lease without consuming anything, so the messages are claimed again."""
        params = {"b_iid": instance_id, "b_worker": worker_id}

        def op(conn: Connection) -> None:
            if conn.execute(_ABANDON, params).rowcount:
                self._dialect.announce(conn, Work.ORCHESTRATIONS)

        self._write(op)

    # -- activities ------------------------------------------------------------------------------

    def claim_activities(
        self, worker_id: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[ActivityWorkItem]:
        """Lease up to ``limit`` activity work items with no live lease, oldest first."""
        if limit < 1:
            return []
        params = {"b_now": now, "b_worker": worker_id, "b_until": lease_until, "b_limit": limit}
        rows = self._write(lambda conn: conn.execute(self._claim_activities, params).all())
        return sorted((ActivityWorkItem(*row) for row in rows), key=lambda item: item.id)

    def complete_activity(self, item: ActivityWorkItem, event: HistoryEvent, now: datetime) -> bool:
        """Delete the work item and put ``event`` in its instance's inbox (see Store)."""

        def op(conn: Connection) -> bool:
            # Lock the instance before touching the item: the order a finishing step uses too.
            owner = conn.execute(self._owner, {"b_iid": item.instance_id}).first()
            if (
                owner is None
                or owner.execution_id != item.execution_id
                or owner.status in FINAL_VALUES
            ):
                return False
            if conn.execute(_DELETE_ACTIVITY, {"b_iid": item.id}).rowcount == 0:
                return False
            conn.execute(
                INSERT_INBOX, [message_row(item.instance_id, event, now, item.execution_id)]
            )
            self._dialect.announce(conn, Work.ORCHESTRATIONS)
            return True

        return self._write(op)

    # -- leases, timers, purge -------------------------------------------------------------------

    def renew_leases(self, worker_id: str, lease_until: datetime) -> None:
        """Extend every lease ``worker_id`` holds (orchestrations and activities)."""
        self._set_leases(worker_id, lease_until=lease_until)

    def release_leases(self, worker_id: str) -> None:
        """Drop every lease ``worker_id`` holds, so its work is claimable at once."""
        self._set_leases(worker_id, lease_owner=None, lease_until=None)

    def _set_leases(self, worker_id: str | None, **values: Any) -> None:
        """Update the leases of ``worker_id`` (None: of every holder) in both tables."""
        # Leases dropped (not renewed) make work claimable: the other hosts should look now.
        freed = Work.ORCHESTRATIONS | Work.ACTIVITIES if "lease_owner" in values else Work.NONE

        def op(conn: Connection) -> None:
            changed = 0
            for table in (instances, activities):
                owner = table.c.lease_owner
                held = owner.is_not(None) if worker_id is None else owner == worker_id
                changed += conn.execute(update(table).where(held).values(**values)).rowcount
            if changed:
                self._dialect.announce(conn, freed)

        self._write(op)

    def attach_host(self, worker_id: str) -> None:
        """Register a host; on SQLite take the file's host lock and free a dead host's leases."""
        if self._dialect.acquire_host():
            self._set_leases(None, lease_owner=None, lease_until=None)

    def listen(self) -> WorkListener | None:
        """Subscribe to what other store objects on this database announce (see Store)."""
        return self._dialect.listen(self._engine)

    def next_visible_time(self, now: datetime) -> datetime | None:
        """Return the earliest ``visible_at`` after ``now`` of any message (the next timer)."""
        found: datetime | None = self._read(lambda conn: conn.scalar(_NEXT_VISIBLE, {"b_now": now}))
        return found

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
            lambda conn: self._writer.rewind(conn, instance_id, history_length, events, work, now)
        )

    def purge_instance(self, instance_id: str) -> int:
        """Delete a finished instance and everything it owns; returns 1 (see Store)."""

        def op(conn: Connection) -> int:
            if conn.execute(_PURGE_ONE, {"b_iid": instance_id}).rowcount == 0:
                status = conn.scalar(_STATUS, {"b_iid": instance_id})
                if status is None:
                    raise InstanceNotFoundError(instance_id)
                raise InvalidInstanceStateError(instance_id, status, "purge")
            delete_owned(conn, [instance_id])
            return 1

        return self._write(op)

    def purge_instances(self, query: InstanceQuery) -> int:
        """Delete every finished instance matching ``query`` (active ones skipped); the count."""
        where = [*queries.filters(query), IS_FINAL]
        stmt = delete(instances).where(*where).returning(instances.c.instance_id)

        def op(conn: Connection) -> int:
            purged = list(conn.scalars(stmt))
            delete_owned(conn, purged)
            return len(purged)

        return self._write(op)

    def close(self) -> None:
        """Release connections and the host lock; the store is unusable afterwards."""
        self._engine.dispose()
        self._dialect.close()
