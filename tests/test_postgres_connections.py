"""PostgreSQL: the store's own connections, lost while idle (the server restarted, a proxy hung
up), are replaced on the next call, which then succeeds; writes sent in pipeline mode included.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import psycopg
import pytest
import sqlalchemy

from durafn.models import OrchestrationRuntimeStatus
from durafn.replay.history import OrchestratorStarted, TaskScheduled
from durafn.store import StepCommit, Store
from durafn.store.base import NewActivity
from durafn.store.driver import Tx

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def hang_up_everyone(admin: sqlalchemy.Engine) -> int:
    """Terminate every other client connection to the test database, as a server restart would;
    how many there were."""
    with admin.connect() as conn:
        killed = conn.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        ).all()
    time.sleep(0.2)  # the server closes the sockets asynchronously
    return len(killed)


def test_calls_after_the_server_hung_up_succeed_on_new_connections(
    pg_store: Store, postgres_admin: sqlalchemy.Engine
) -> None:
    pg_store.create_instance("a", "orch", None, "ea", T0)
    assert hang_up_everyone(postgres_admin) >= 1

    pg_store.create_instance("b", "orch", None, "eb", T0)  # a write transaction, pipelined
    claimed = pg_store.claim_orchestrations("w1", T0, T0.replace(hour=1), 10)
    assert sorted(item.instance.instance_id for item in claimed) == ["a", "b"]

    hang_up_everyone(postgres_admin)
    item = claimed[0]
    scheduled = TaskScheduled(timestamp=T0, task_id=0, name="act", input="0")
    step = StepCommit(
        item.instance.instance_id,
        item.instance.execution_id,
        "w1",
        [m.id for m in item.messages],
        [OrchestratorStarted(timestamp=T0), item.messages[0].event, scheduled],
        OrchestrationRuntimeStatus.Running,
        activities=[NewActivity(0, "act", "0")],
        history_length=0,
        lease_activities=1,
        lease_until=T0.replace(hour=1),
    )
    leased = pg_store.commit_step(step, T0)  # the guard's reply is read before the commit
    assert leased is not None and [w.name for w in leased] == ["act"]

    hang_up_everyone(postgres_admin)
    assert len(pg_store.get_history(item.instance.instance_id)) == 3  # a lone read


def test_a_read_in_a_pipelined_transaction_gets_its_own_reply(pg_store: Store) -> None:
    # A reply bigger than the server's send buffer arrives unasked while later statements are
    # being sent; it must not be taken for the reply of the statement read next.
    connections = pg_store._connections  # type: ignore[attr-defined]  # the driver under test

    def op(tx: Tx) -> Any:
        assert tx.wait is not None  # a write transaction on PostgreSQL is pipelined
        tx.run("SELECT repeat('x', 100000)")
        time.sleep(0.1)  # the big reply is on its way meanwhile
        return tx.one("SELECT 2 AS answer")

    assert connections.transaction(op) == (2,)


def test_a_statement_sent_behind_a_failed_one_runs_again_later(pg_store: Store) -> None:
    # Each statement is prepared on the server when first sent. If it is sent behind a failing
    # statement, the server skips the preparation, and the connection must not count it as
    # prepared, or every later run of the statement fails on that connection; on a connection
    # that has rolled back many times before as well.
    connections = pg_store._connections  # type: ignore[attr-defined]  # the driver under test
    count = "SELECT count(*) FROM schedule_runs WHERE name = %(name)s"

    def fail_first(tx: Tx) -> Any:
        tx.run("SELECT CAST(%(text)s AS integer)", {"text": "x"})
        return tx.scalar(count, {"name": "a"})

    for _ in range(6):
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            connections.transaction(lambda tx: tx.run("SELECT CAST(%(t)s AS integer)", {"t": "x"}))
    for _ in range(5):
        assert connections.transaction(lambda tx: tx.scalar(count, {"name": "a"})) == 0
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        connections.transaction(fail_first)
    for _ in range(3):
        assert connections.transaction(lambda tx: tx.scalar(count, {"name": "a"})) == 0
