"""The store's fixed statements as plain SQL, spelled once per dialect (see ``driver.py``).

The tables are those of ``schema.py``. Parameters are ``:name``; ``in_ids`` lists are bound with
``Dialect.ids`` and times with ``Dialect.ts``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from durafn.models import FINAL_STATUSES, OrchestrationRuntimeStatus
from durafn.store.base import CONTROL_EVENT_TYPES, InstanceRecord
from durafn.store.dialect import Dialect

INSTANCE_FIELDS = (
    "instance_id",
    "name",
    "execution_id",
    "status",
    "input",
    "output",
    "custom_status",
    "created_time",
    "last_updated_time",
    "parent_instance_id",
    "parent_task_id",
    "history_length",
)
"""The columns an InstanceRecord is read from, in its field order."""
INSTANCE_COLUMNS = ", ".join(INSTANCE_FIELDS)
ACTIVITY_COLUMNS = "id, instance_id, execution_id, task_id, name, input, attempt"
"""The columns an ActivityWorkItem is read from, in its field order."""

HISTORY_ROW_KEYS = tuple((f"seq{n}", f"event_type{n}", f"event{n}") for n in range(32))
"""The parameter names of each row of ``Statements.insert_history``: at most 32 rows a statement."""

_FINAL = ", ".join(sorted(f"'{s.value}'" for s in FINAL_STATUSES))
IS_FINAL = f"status IN ({_FINAL})"
IS_LIVE = f"status NOT IN ({_FINAL})"
_CONTROL = ", ".join(f"'{t}'" for t in sorted(CONTROL_EVENT_TYPES))
_SUSPENDED = OrchestrationRuntimeStatus.Suspended.value
_RUNNING = OrchestrationRuntimeStatus.Running.value


def instance_record(row: Sequence[Any], ts: Callable[[Any], datetime]) -> InstanceRecord:
    """An InstanceRecord from a row of INSTANCE_FIELDS; ``ts`` reads its two time columns."""
    return InstanceRecord(
        instance_id=row[0],
        name=row[1],
        execution_id=row[2],
        status=OrchestrationRuntimeStatus(row[3]),
        input=row[4],
        output=row[5],
        custom_status=row[6],
        created_time=ts(row[7]),
        last_updated_time=ts(row[8]),
        parent_instance_id=row[9],
        parent_task_id=row[10],
        history_length=row[11],
    )


_STEPPED_ACTIVITY = (
    "id = :activity AND (activities.instance_id = :iid AND activities.execution_id = :eid) IS TRUE"
)
"""The work item a step on an activity's result is for: found by primary key alone (see _guard)."""


def _lease_free(table: str) -> str:
    return f"({table}.lease_until IS NULL OR {table}.lease_until <= :now)"


class Statements:
    """Every fixed statement, prepared for one dialect."""

    def __init__(self, d: Dialect) -> None:
        p = d.prepare
        ids = d.in_ids

        # -- instances
        self.instance = p(f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE instance_id = :iid")
        self.status = p("SELECT status FROM instances WHERE instance_id = :iid")
        self.statuses = p(
            f"SELECT instance_id, status FROM instances WHERE {ids('instance_id', 'ids')}"
        )
        self.owner = p(
            "SELECT status, execution_id FROM instances WHERE instance_id = :iid" + d.for_share
        )
        """The instance's status and execution, held against a concurrent step until commit."""
        self.alive = p(
            f"SELECT instance_id FROM instances WHERE {ids('instance_id', 'ids')} AND {IS_LIVE}"
        )
        insert = (
            "INSERT INTO instances (instance_id, name, execution_id, status, input, output, "
            "custom_status, created_time, last_updated_time, parent_instance_id, parent_task_id, "
            "history_length, lease_owner, lease_until) VALUES (:instance_id, :name, "
            ":execution_id, :status, :input, :output, :custom_status, :now, :now, "
            ":parent_instance_id, :parent_task_id, :count, :lease_owner, :lease_until) "
            "ON CONFLICT (instance_id) "
        )
        # The unique key decides: a live row makes the WHERE false, so its id is not returned.
        upsert = (
            f"{insert}DO UPDATE SET "
            "name = excluded.name, execution_id = excluded.execution_id, status = excluded.status, "
            "input = excluded.input, output = excluded.output, "
            "custom_status = excluded.custom_status, "
            "created_time = excluded.created_time, last_updated_time = excluded.last_updated_time, "
            "parent_instance_id = excluded.parent_instance_id, "
            "parent_task_id = excluded.parent_task_id, history_length = excluded.history_length, "
            "lease_owner = excluded.lease_owner, lease_until = excluded.lease_until "
            f"WHERE instances.{IS_FINAL} RETURNING instance_id, {d.inserted}"
        )
        self.upsert = p(upsert)
        self.start_or_refuse = p(d.refusing(f"{insert}DO NOTHING RETURNING instance_id"))
        """The insert of a new id, failing the transaction (where the driver pipelines) when
        the id is taken, active or finished; as it is started, or as its first step leaves it."""
        self.delete_owned = [
            p(f"DELETE FROM {table} WHERE {ids('instance_id', 'ids')}")
            for table in ("history", "inbox", "activities")
        ]
        self.purge_one = p(f"DELETE FROM instances WHERE instance_id = :iid AND {IS_FINAL}")
        self.purge_many = p(
            f"DELETE FROM instances WHERE {ids('instance_id', 'ids')} AND {IS_FINAL} "
            "RETURNING instance_id"
        )
        self.rewind = p(
            "UPDATE instances SET status = :running, output = NULL, history_length = :count, "
            "last_updated_time = :now, lease_owner = NULL, lease_until = NULL "
            "WHERE instance_id = :iid AND status = :failed AND history_length = :length"
        )

        # -- history
        self.history = p("SELECT event FROM history WHERE instance_id = :iid ORDER BY seq")
        # A step's events go in one statement (a statement costs more than a row): one statement
        # per number of rows, up to a bound that keeps the prepared statements few.
        rows = [
            f"(:instance_id, :{seq}, :{kind}, :{event})" for seq, kind, event in HISTORY_ROW_KEYS
        ]
        self.insert_history = [
            p(
                "INSERT INTO history (instance_id, seq, event_type, event) VALUES "
                + ", ".join(rows[:n])
            )
            for n in range(1, len(rows) + 1)
        ]
        self.delete_history = p("DELETE FROM history WHERE instance_id = :iid")

        # -- inbox
        self.insert_inbox = p(
            "INSERT INTO inbox (instance_id, execution_id, event_type, event, visible_at) "
            "VALUES (:instance_id, :execution_id, :event_type, :event, :visible_at)"
        )
        self.messages = p(
            "SELECT id, instance_id, execution_id, event_type, event FROM inbox "
            f"WHERE {ids('instance_id', 'ids')} AND visible_at <= :now ORDER BY id"
        )
        self.delete_messages = p(f"DELETE FROM inbox WHERE {ids('id', 'ids')}")
        self.delete_consumed = p(
            f"DELETE FROM inbox WHERE instance_id = :iid AND {ids('id', 'ids')}"
        )
        self.next_visible = p("SELECT min(visible_at) FROM inbox WHERE visible_at > :now")
        self.forget_schedule_runs = p("DELETE FROM schedule_runs WHERE due < :before")
        self.claim_schedule_run = p(
            "INSERT INTO schedule_runs (name, due, host) VALUES (:name, :due, :host) "
            "ON CONFLICT (name, due) DO NOTHING RETURNING name"
        )
        # Continue-as-new: the old execution's history, work and timers go; buffered events
        # (no execution id) stay, moved behind the events the new execution carried over so the
        # new execution still receives every event in arrival order.
        self.delete_old_execution = [
            self.delete_history,
            p("DELETE FROM activities WHERE instance_id = :iid"),
            p("DELETE FROM inbox WHERE instance_id = :iid AND execution_id IS NOT NULL"),
        ]
        self.max_inbox_id = p("SELECT max(id) FROM inbox")
        self.requeue_buffered = p(
            "INSERT INTO inbox (instance_id, execution_id, event_type, event, visible_at) "
            "SELECT instance_id, execution_id, event_type, event, visible_at FROM inbox "
            "WHERE instance_id = :iid AND execution_id IS NULL ORDER BY id"
        )
        self.delete_requeued = p(
            "DELETE FROM inbox WHERE instance_id = :iid AND execution_id IS NULL AND id <= :max"
        )
        self.delete_unfinished_work = [
            p(f"DELETE FROM {table} WHERE instance_id = :iid") for table in ("inbox", "activities")
        ]

        # -- claims: lock candidates, lease them, return them
        eligible = (
            "inbox.visible_at <= :now AND "
            "(inbox.execution_id IS NULL OR inbox.execution_id = owner.execution_id) AND "
            f"(owner.status != '{_SUSPENDED}' OR inbox.event_type IN ({_CONTROL})) AND "
            + _lease_free("owner")
        )
        # Oldest message first; a message counts when it is visible, belongs to the current
        # execution (or to none) and, for a Suspended instance, is a control message.
        claimable = (
            "SELECT inbox.instance_id FROM inbox JOIN instances AS owner "
            f"ON inbox.instance_id = owner.instance_id WHERE {eligible} "
            "GROUP BY inbox.instance_id ORDER BY min(inbox.id) LIMIT :window"
        )
        self.claim_instances = p(
            "UPDATE instances SET lease_owner = :worker, lease_until = :until "
            "WHERE instance_id IN (SELECT picked.instance_id FROM instances AS picked "
            f"WHERE picked.instance_id IN ({claimable}) AND {_lease_free('picked')} "
            f"LIMIT :limit{d.skip_locked}) RETURNING {INSTANCE_COLUMNS}"
        )
        self.unlease = p(
            "UPDATE instances SET lease_owner = NULL, lease_until = NULL "
            f"WHERE {ids('instance_id', 'ids')}"
        )
        self.abandon = p(
            "UPDATE instances SET lease_owner = NULL, lease_until = NULL "
            "WHERE instance_id = :iid AND lease_owner = :worker"
        )
        self.claim_activities = p(
            "UPDATE activities SET lease_owner = :worker, lease_until = :until, "
            "attempt = attempt + 1 WHERE id IN (SELECT picked.id FROM activities AS picked "
            f"WHERE {_lease_free('picked')} ORDER BY picked.id LIMIT :limit{d.skip_locked}) "
            f"RETURNING {ACTIVITY_COLUMNS}"
        )

        # -- activities
        insert_activity = (
            "INSERT INTO activities (instance_id, execution_id, task_id, name, input, "
            "lease_owner, lease_until, attempt, created_time) VALUES (:instance_id, "
            ":execution_id, :task_id, :name, :input, :lease_owner, :lease_until, :attempt, :now)"
        )
        self.insert_activity = p(insert_activity)
        self.insert_leased_activity = p(f"{insert_activity} RETURNING {ACTIVITY_COLUMNS}")
        delete_activity = "DELETE FROM activities WHERE id = :id RETURNING id"
        self.delete_activity = p(delete_activity)
        # A step on an activity's result takes its work item: gone meanwhile (completed by a
        # host that took the item over) means the result is no longer wanted. Where the guard
        # can take it (writes_in_with), it does; elsewhere this statement follows the guard.
        self.take_activity = None if d.writes_in_with else p(d.refusing(delete_activity))

        # -- leases
        self.set_leases = {
            (table, owner, renew): p(
                f"UPDATE {table} SET "
                + ("lease_until = :until" if renew else "lease_owner = NULL, lease_until = NULL")
                + " WHERE "
                + ("lease_owner = :worker" if owner else "lease_owner IS NOT NULL")
            )
            for table in ("instances", "activities")
            for owner in (True, False)
            for renew in (True, False)
        }

        # -- the step's guard: update the instance if the lease, execution and history hold
        # Taken behind the guard, so the instance row is locked before the work item, in the
        # order complete_activity locks them: two hosts never wait on each other.
        take = (
            f"DELETE FROM activities WHERE {_STEPPED_ACTIVITY} AND EXISTS (SELECT 1 FROM admitted) "
            "RETURNING id"
        )
        self.guards = {
            (new, release, direct, based, running): p(
                d.refusing(
                    self._guard(new, release, direct, based, running, d.writes_in_with),
                    take if direct and d.writes_in_with else None,
                )
            )
            for new in (False, True)
            for release in (False, True)
            for direct in (False, True)
            for based in (False, True)
            for running in (False, True)
        }

    @staticmethod
    def _guard(
        new_execution: bool, release: bool, direct: bool, based: bool, running: bool, taking: bool
    ) -> str:
        """``direct``: the step took an activity's result without a claim; ``based``: it was
        computed on a known history length (see StepCommit); ``running``: the instance stays
        Running, which a direct step's instance already is (the status index is left alone);
        ``taking``: a direct step's work item is deleted behind the guard, in its statement, so
        the guard need not look for it.
        """
        sets = [] if direct and running else ["status = :status"]
        sets += [
            "output = :output",
            "custom_status = :custom_status",
            "last_updated_time = :now",
            "history_length = :count"
            if new_execution
            else "history_length = history_length + :count",
        ]
        if new_execution:
            sets += ["execution_id = :new_eid", "input = :new_input"]
        if release:
            sets += ["lease_owner = NULL", "lease_until = NULL"]
        # The instance and the activity are each found by primary key alone. A condition that
        # another index could serve (status, lease owner, an activity's instance) is written
        # "(...) IS TRUE", which no index serves: without fresh statistics (a young database,
        # or autovacuum off) PostgreSQL's planner may otherwise walk every row that ever had
        # the status, dead ones too.
        held = "(lease_owner = :worker) IS TRUE"
        if direct:
            # Unleased and Running; messages waiting go first (arrival order); and the result
            # must still be wanted (its work item not completed elsewhere, not discarded).
            held = (
                f"(status = '{_RUNNING}') IS TRUE AND {_lease_free('instances')} AND NOT EXISTS "
                "(SELECT 1 FROM inbox WHERE inbox.instance_id = :iid AND visible_at <= :now "
                "AND (inbox.execution_id IS NULL OR inbox.execution_id = :eid))"
            )
            if not taking:
                held += f" AND EXISTS (SELECT 1 FROM activities WHERE {_STEPPED_ACTIVITY})"
        based_on = " AND history_length = :base" if based else ""
        return (
            f"UPDATE instances SET {', '.join(sets)} WHERE instance_id = :iid AND {held} "
            f"AND execution_id = :eid{based_on} RETURNING history_length"
        )
