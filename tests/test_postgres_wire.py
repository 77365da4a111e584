"""PostgreSQL: the store's lean connection (pgwire.py) against a real server: parameters and
values as psycopg adapts them, replies matched to the statements that asked, failures raised
once with everything behind them skipped, and no deadlock when replies outgrow the sockets.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone

import psycopg
import pytest
import sqlalchemy
from pgstore import store_connection
from sqlalchemy.engine import make_url

from durafn.store.pgwire import WireConnection, numbered

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 1, 1, 12, 30, tzinfo=timezone.utc)


def connect(postgres_url: str, send_early: bool) -> WireConnection:
    """A lean connection to ``postgres_url``."""
    url = make_url(postgres_url)
    return WireConnection(
        psycopg.connect(
            host=url.host,
            port=url.port,
            user=url.username,
            dbname=url.database,
            options=str(url.query["options"]),
            autocommit=True,
        ),
        send_early=send_early,
    )


@pytest.fixture(params=[False, True], ids=["sent-at-wait", "sent-early"])
def wire(postgres_url: str, request: pytest.FixtureRequest) -> Iterator[WireConnection]:
    """A lean connection to a fresh schema, with a table to write to, in either sending mode."""
    conn = connect(postgres_url, request.param)
    conn.cursor().execute("CREATE TABLE things (id integer PRIMARY KEY, note text)")
    yield conn
    conn.close()


def backend_pid(wire: WireConnection) -> int:
    """The server process serving ``wire``."""
    cursor = wire.cursor()
    cursor.execute("SELECT pg_backend_pid()")
    (pid,) = cursor.fetchone()
    return int(pid)


def terminate(admin_engine: sqlalchemy.Engine, pid: int) -> None:
    """End server process ``pid``'s session, as a server restart would."""
    with admin_engine.connect() as admin:
        admin.exec_driver_sql("SELECT pg_terminate_backend(%(pid)s)", {"pid": pid})


def test_placeholders_become_numbered_parameters() -> None:
    assert numbered("SELECT %(a)s, %(b)s, %(a)s, '5%%'") == ("SELECT $1, $2, $1, '5%'", ("a", "b"))
    assert numbered("SELECT %s, %s") == ("SELECT $1, $2", None)
    with pytest.raises(ValueError, match="mixed"):
        numbered("SELECT %(a)s, %s")


def test_values_go_and_come_back_as_psycopg_adapts_them(wire: WireConnection) -> None:
    cursor = wire.cursor()
    cursor.execute(
        "SELECT %(n)s + 1, %(text)s, %(at)s, %(nothing)s::text, 'x' = ANY(%(ids)s)",
        {"n": 41, "text": "héllo", "at": T0, "nothing": None, "ids": ["y", "x"]},
    )
    assert cursor.fetchone() == (42, "héllo", T0, None, True)
    assert cursor.description is not None and len(cursor.description) == 5
    cursor.execute("SELECT %s || %s", ("a", "b"))  # positional, as NOTIFY's are sent
    assert cursor.fetchall() == [("ab",)]


def test_replies_in_a_pipeline_reach_the_cursors_that_asked(wire: WireConnection) -> None:
    with wire.pipeline() as wait:
        writer, first, second = wire.cursor(), wire.cursor(), wire.cursor()
        writer.execute("BEGIN")
        writer.executemany(
            "INSERT INTO things (id, note) VALUES (%(id)s, %(note)s)",
            [{"id": n, "note": f"n{n}"} for n in range(5)],
        )
        first.execute("SELECT note FROM things WHERE id < %(below)s ORDER BY id", {"below": 2})
        second.execute("UPDATE things SET note = 'changed' WHERE id >= %(from)s", {"from": 3})
        assert first.fetchall() == [("n0",), ("n1",)]  # read before the pipeline ends
        writer.execute("COMMIT")
        wait()
        assert second.rowcount == 2
    check = wire.cursor()
    check.execute("SELECT count(*) FROM things WHERE note = 'changed'")
    assert check.fetchone() == (2,) and check.fetchone() is None


def test_a_failure_is_raised_once_and_what_follows_it_is_skipped(wire: WireConnection) -> None:
    later = wire.cursor()
    with pytest.raises(psycopg.errors.DivisionByZero), wire.pipeline():
        wire.cursor().execute("BEGIN")
        wire.cursor().execute("INSERT INTO things (id) VALUES (1)")
        wire.cursor().execute("SELECT 1 / %(zero)s", {"zero": 0})
        later.execute("INSERT INTO things (id) VALUES (2)")
        wire.cursor().execute("COMMIT")
    with pytest.raises(psycopg.errors.PipelineAborted):
        later.fetchone()
    assert wire.transaction_status is psycopg.pq.TransactionStatus.INERROR
    wire.rollback()
    cursor = wire.cursor()
    cursor.execute("SELECT count(*) FROM things")
    assert cursor.fetchone() == (0,)  # the insert before the failure was undone too


def test_a_statement_first_sent_behind_a_failure_is_prepared_again(wire: WireConnection) -> None:
    insert = "INSERT INTO things (id) VALUES (%(id)s)"
    with pytest.raises(psycopg.errors.DivisionByZero), wire.pipeline():
        wire.cursor().execute("SELECT 1 / 0")
        wire.cursor().execute(insert, {"id": 1})  # its preparation is skipped with it
    for n in range(2, 5):
        wire.cursor().execute(insert, {"id": n})
    cursor = wire.cursor()
    cursor.execute("SELECT array_agg(id ORDER BY id) FROM things")
    assert cursor.fetchone() == ([2, 3, 4],)


@pytest.mark.timeout(60)
def test_replies_bigger_than_the_sockets_do_not_stall_the_sending(wire: WireConnection) -> None:
    # The server blocks on sending its replies once the client's socket buffer is full; the
    # client must keep reading while it sends, or both wait for ever.
    with wire.pipeline():
        cursors = [wire.cursor() for _ in range(200)]
        for cursor in cursors:
            cursor.execute("SELECT repeat('x', 100000) || %(pad)s", {"pad": "y" * 20000})
    assert all(cursor.fetchone() == ("x" * 100000 + "y" * 20000,) for cursor in cursors)


def test_a_server_that_hung_up_while_idle_is_noticed_before_sending(
    wire: WireConnection, postgres_admin: sqlalchemy.Engine
) -> None:
    terminate(postgres_admin, backend_pid(wire))
    time.sleep(0.2)  # the server closes the socket asynchronously
    sent = wire.cursor()
    with pytest.raises(psycopg.OperationalError):
        sent.execute("SELECT 1")
    assert wire.closed and sent.outstanding == 0


def test_a_connection_lost_mid_pipeline_fails_every_reply_and_is_not_reused(
    wire: WireConnection, postgres_admin: sqlalchemy.Engine
) -> None:
    hang_up = threading.Timer(0.3, terminate, (postgres_admin, backend_pid(wire)))
    hang_up.start()
    behind = wire.cursor()
    with pytest.raises(psycopg.OperationalError), wire.pipeline():
        wire.cursor().execute("SELECT pg_sleep(5)")
        behind.execute("SELECT 1")
    hang_up.join()
    assert wire.closed
    with pytest.raises(psycopg.OperationalError):
        behind.fetchone()


def test_a_cursor_whose_statement_failed_runs_the_next_one(wire: WireConnection) -> None:
    cursor = wire.cursor()
    with pytest.raises(psycopg.errors.DivisionByZero):
        cursor.execute("SELECT 1 / 0")
    cursor.execute("SELECT 2")
    assert cursor.fetchone() == (2,)


def advisory_lock_held(admin_engine: sqlalchemy.Engine, key: int) -> bool:
    """Whether some session holds advisory lock ``key``, as another session sees it."""
    with admin_engine.connect() as admin:
        found = admin.exec_driver_sql(
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = %(key)s AND granted",
            {"key": key},
        )
        return found.first() is not None


@pytest.mark.parametrize("send_early", [False, True])
def test_a_statement_sent_early_runs_before_anything_waits(
    postgres_url: str, postgres_admin: sqlalchemy.Engine, send_early: bool
) -> None:
    wire = connect(postgres_url, send_early)
    key = 7_340_001
    try:
        with wire.pipeline() as wait:
            wire.cursor().execute("SELECT pg_advisory_lock(%s)", [key])
            deadline = time.monotonic() + 2
            held = advisory_lock_held(postgres_admin, key)
            while send_early and not held and time.monotonic() < deadline:
                time.sleep(0.01)
                held = advisory_lock_held(postgres_admin, key)
            assert held is send_early  # sent at the wait, the server has not seen it yet
            wait()
            assert advisory_lock_held(postgres_admin, key)
    finally:
        wire.close()


@pytest.mark.parametrize(("query", "send_early"), [("", True), ("&synchronous=NORMAL", False)])
def test_the_store_sends_early_where_a_commit_waits_for_its_wal_flush(
    postgres_url: str, query: str, send_early: bool
) -> None:
    with store_connection(postgres_url + query) as conn:
        assert conn.send_early is send_early


def test_options_given_twice_in_the_url_all_apply(postgres_url: str) -> None:
    # postgres_url's own options key sets the test's schema; a second one adds a setting
    with store_connection(postgres_url + "&options=-cstatement_timeout%3D12345") as conn:
        shown = [
            conn.conn.execute(query).fetchone()
            for query in (
                "SHOW statement_timeout",
                "SHOW enable_seqscan",
                "SELECT current_schema()",
            )
        ]
    assert shown[:2] == [("12345ms",), ("off",)]
    schema = shown[2]
    assert schema is not None
    assert str(schema[0]).startswith("durafn_test_")
