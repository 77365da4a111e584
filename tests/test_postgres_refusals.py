"""PostgreSQL: a step sends its writes and its COMMIT before its guard answers, so the server
itself must undo a refused step; these are the races only row locks between two connections
can show. The conformance suite covers every other refusal on both backends.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url
from test_store_conformance import (
    T0,
    at,
    claim_one,
    first_step,
    hear,
    leased_activity,
    on_result,
)

from durafn.errors import InstanceExistsError
from durafn.replay.history import EventRaised, TaskCompleted, TaskScheduled
from durafn.store import NewActivity, NewMessage, Store, open_store
from durafn.store.base import StepCommit, Work
from durafn.store.pgwire import WireConnection
from durafn.store.postgres import PostgresDialect

pytestmark = pytest.mark.postgres


@pytest.fixture
def other_host(postgres_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A connection of its own to the store's schema, standing for another host mid-transaction."""
    url = make_url(postgres_url)
    conn = psycopg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        dbname=url.database,
        options=str(url.query["options"]),
    )
    yield conn
    conn.close()


def commit_step_in_thread(store: Store, step: StepCommit) -> tuple[threading.Thread, list[object]]:
    """Run ``store.commit_step`` on a thread of its own (it will wait on a row lock)."""
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(store.commit_step(step, at(5))))
    thread.start()
    return thread, outcome


def test_a_step_on_a_result_completed_meanwhile_elsewhere_is_refused_and_writes_nothing(
    pg_store: Store,
    other_host: psycopg.Connection[tuple[object, ...]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, work, length = leased_activity(pg_store)
    history = pg_store.get_history("i1")
    # Another host that took the work item over completes it, as complete_activity does: it
    # holds the instance, deletes the item and sends the result, and commits only after the
    # step below has passed its guard (that host's message is not yet visible to it).
    other_host.execute("SELECT 1 FROM instances WHERE instance_id = 'i1' FOR SHARE")
    other_host.execute("DELETE FROM activities WHERE id = %s", (work.id,))
    other_host.execute(
        "INSERT INTO inbox (instance_id, execution_id, event_type, event, visible_at) "
        "VALUES ('i1', 'e1', 'TaskCompleted', '{}', %s)",
        (at(1),),
    )
    thread, outcome = commit_step_in_thread(pg_store, on_result(work, length, at(5)))
    time.sleep(0.3)  # the step waits for the instance row
    assert thread.is_alive()
    with caplog.at_level(logging.WARNING):
        other_host.commit()
        thread.join(10)

    assert outcome == [None]
    assert pg_store.get_history("i1") == history
    record = pg_store.get_instance("i1")
    assert record is not None and record.history_length == length
    assert [r.message for r in caplog.records] == []


def test_a_step_on_a_result_waiting_for_its_instance_holds_no_lock_on_the_work_item(
    pg_store: Store, other_host: psycopg.Connection[tuple[object, ...]]
) -> None:
    # The other host holds the instance first, as complete_activity does, and deletes the work
    # item after the step has started waiting for the instance: the step locks the instance
    # before the item, in the same order, so the two never wait on each other (a deadlock).
    _, work, length = leased_activity(pg_store)
    history = pg_store.get_history("i1")
    other_host.execute("SET lock_timeout = '500ms'")  # under deadlock_timeout (1 s)
    other_host.execute("SELECT 1 FROM instances WHERE instance_id = 'i1' FOR SHARE")
    thread, outcome = commit_step_in_thread(pg_store, on_result(work, length, at(5)))
    time.sleep(0.3)  # the step waits for the instance row
    assert thread.is_alive()
    other_host.execute("DELETE FROM activities WHERE id = %s", (work.id,))
    other_host.execute(
        "INSERT INTO inbox (instance_id, execution_id, event_type, event, visible_at) "
        "VALUES ('i1', 'e1', 'TaskCompleted', '{}', %s)",
        (at(1),),
    )
    other_host.commit()
    thread.join(10)

    assert outcome == [None]
    assert pg_store.get_history("i1") == history


def test_a_refused_step_with_reads_after_its_guard_writes_nothing(
    pg_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    # A step that messages another instance reads which targets are alive after sending its
    # guard: a refused guard fails that read, not just the commit.
    _, work, length = leased_activity(pg_store)
    pg_store.create_instance("other", "orch", None, "e2", at(0))
    ping = EventRaised(timestamp=at(5), name="ping", input=None)
    stale = on_result(work, length - 1, at(5), messages=[NewMessage("other", ping)])
    with caplog.at_level(logging.WARNING):
        assert pg_store.commit_step(stale, at(5)) is None

    assert len(pg_store.get_history("i1")) == length
    assert ping not in [m.event for m in claim_one(pg_store, now=at(6)).messages]
    assert [r.message for r in caplog.records] == []
    # the work item is still there, wanted, and its result still goes through
    assert pg_store.commit_step(on_result(work, length, at(7)), at(7)) == []


def test_a_refused_step_in_a_group_leaves_the_others_committed(pg_store: Store) -> None:
    _, work, length = leased_activity(pg_store)
    done = TaskCompleted(timestamp=at(5), task_id=0, result='"r"')
    stale = on_result(work, length - 1, at(5))
    outcomes = pg_store.batch(
        [
            lambda: pg_store.commit_step(stale, at(5)),
            lambda: pg_store.create_instance("i3", "orch", None, "e3", at(5)),
            lambda: pg_store.commit_step(on_result(work, length, at(5)), at(5)),
        ]
    )

    assert [o.error for o in outcomes] == [None, None, None]
    assert [o.value for o in outcomes] == [None, None, []]
    assert pg_store.get_history("i1")[length:][1] == done
    assert pg_store.get_instance("i3") is not None


def count_commits(monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """One entry per transaction the store ends with its COMMIT (committed or failed)."""
    commits: list[None] = []
    finish = PostgresDialect.finish

    def counted(dialect: PostgresDialect, *args: object) -> None:
        commits.append(None)
        finish(dialect, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(PostgresDialect, "finish", counted)
    return commits


def test_a_refusal_in_a_group_reruns_the_group_under_savepoints_in_one_commit(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A refusal the server raises fails the whole group; running its calls one by one would
    # commit, and wait for the WAL flush, once per call.
    _, work, length = leased_activity(pg_store)
    scheduled = TaskScheduled(timestamp=at(5), task_id=1, name="next", input="1")
    fresh = on_result(work, length, at(5), scheduled, activities=[NewActivity(1, "next", "1")])
    fresh.lease_activities, fresh.lease_until = 1, at(35)
    stale = on_result(work, length - 1, at(5), activities=[NewActivity(2, "stale", "2")])
    stale.lease_activities, stale.lease_until = 1, at(35)
    commits = count_commits(monkeypatch)
    with caplog.at_level(logging.DEBUG, logger="durafn.store"):
        outcomes = pg_store.batch(
            [
                lambda: pg_store.create_instance("i1", "orch", None, "again", at(5)),  # taken
                lambda: pg_store.create_instance("a", "orch", None, "ea", at(5)),
                lambda: pg_store.commit_step(stale, at(5)),  # its guard refuses
                lambda: pg_store.commit_step(fresh, at(5)),
                lambda: pg_store.create_instance("b", "orch", None, "eb", at(5)),
            ]
        )

    assert len(commits) == 2  # the group that failed, then its careful rerun
    assert "one by one" not in caplog.text
    assert isinstance(outcomes[0].error, InstanceExistsError)
    assert [o.error for o in outcomes[1:]] == [None] * 4
    assert outcomes[2].value is None  # refused: its leased activity is not handed out
    [leased] = outcomes[3].value
    assert (leased.instance_id, leased.task_id, leased.name) == ("i1", 1, "next")
    history = pg_store.get_history("i1")
    assert len(history) == length + 3 and history[-1] == scheduled
    record = pg_store.get_instance("i1")
    assert record is not None and record.execution_id == "e1"
    assert {"a", "b"} <= {
        i.instance.instance_id for i in pg_store.claim_orchestrations("w2", at(6), at(36), 10)
    }
    assert pg_store.claim_activities("w2", at(6), at(36), 10) == []  # only "next", leased to w1


def test_a_large_group_reruns_in_groups_of_at_most_64_savepoints(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each savepoint is a subtransaction; over 64 in one transaction slow every other session
    pg_store.create_instance("taken", "orch", None, "e1", T0)
    ids = [*(f"i{n}" for n in range(70)), "taken"]
    calls = [
        functools.partial(pg_store.create_instance, iid, "orch", None, f"new-{iid}", T0)
        for iid in ids
    ]
    commits = count_commits(monkeypatch)

    outcomes = pg_store.batch(calls)

    assert len(commits) == 3  # the group that failed, then careful groups of 64 and 7
    assert [o.error for o in outcomes[:-1]] == [None] * (len(calls) - 1)
    assert isinstance(outcomes[-1].error, InstanceExistsError)
    started = pg_store.claim_orchestrations("w1", T0, at(30), 2 * len(calls))
    assert len(started) == len(calls)  # every new one, and "taken" once


def test_a_refused_call_in_a_careful_group_announces_nothing(pg_store: Store) -> None:
    _, work, length = leased_activity(pg_store)
    listener = pg_store.listen()
    assert listener is not None
    other = open_store(pg_store.url)  # a store's own work is not announced to itself
    try:
        stale = on_result(work, length - 1, at(5), activities=[NewActivity(2, "stale", "2")])
        outcomes = other.batch(
            [
                lambda: other.commit_step(stale, at(5)),  # would add an unleased activity
                lambda: other.create_instance("a", "orch", None, "ea", at(5)),
            ]
        )
        assert [(o.value, o.error) for o in outcomes] == [(None, None)] * 2
        assert hear(listener) == Work.ORCHESTRATIONS
    finally:
        other.close()
        listener.close()


def test_a_careful_group_with_a_call_that_fails_runs_each_call_alone(pg_store: Store) -> None:
    pg_store.create_instance("i1", "orch", None, "e1", T0)

    def broken() -> None:
        pg_store.create_instance("c", "orch", None, "ec", T0)
        raise ValueError("not a refusal: the shared transaction is undone")

    outcomes = pg_store.batch(
        [
            lambda: pg_store.create_instance("i1", "orch", None, "again", T0),  # refused
            broken,
            lambda: pg_store.create_instance("b", "orch", None, "eb", T0),
        ]
    )

    assert [type(o.error) for o in outcomes] == [InstanceExistsError, ValueError, type(None)]
    assert {
        i.instance.instance_id for i in pg_store.claim_orchestrations("w1", T0, at(30), 10)
    } == {
        "i1",
        "b",
        "c",
    }


def test_a_first_step_waits_on_the_server_once(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The start, its step and the COMMIT go out together: a start does not wait for its upsert.
    waits: list[None] = []
    read = WireConnection._read

    def counted(conn: WireConnection, done: Callable[[], bool]) -> None:
        waits.append(None)
        read(conn, done)

    monkeypatch.setattr(WireConnection, "_read", counted)

    assert pg_store.commit_step(first_step("i1", "e1"), T0) == []

    assert len(waits) == 1
    record = pg_store.get_instance("i1")
    assert record is not None and record.execution_id == "e1"


def test_a_first_step_of_an_id_another_host_is_starting_is_refused_and_writes_nothing(
    pg_store: Store, other_host: psycopg.Connection[tuple[object, ...]]
) -> None:
    # The other host's start is not committed when the step's upsert arrives: the upsert waits
    # on the key, then finds the id active, and the writes sent behind it are undone.
    other_host.execute(
        "INSERT INTO instances (instance_id, name, execution_id, status, created_time, "
        "last_updated_time, history_length) VALUES ('i1', 'orch', 'e1', 'Pending', %s, %s, 0)",
        (T0, T0),
    )
    outcome: list[object] = []

    def start() -> None:
        try:
            outcome.append(pg_store.commit_step(first_step("i1", "e2"), T0))
        except InstanceExistsError as error:
            outcome.append(error)

    thread = threading.Thread(target=start)
    thread.start()
    time.sleep(0.3)  # the step waits for the other host's row
    assert thread.is_alive()
    other_host.commit()
    thread.join(10)

    [error] = outcome
    assert isinstance(error, InstanceExistsError) and error.status == "Pending"
    record = pg_store.get_instance("i1")
    assert record is not None and record.execution_id == "e1"
    assert pg_store.get_history("i1") == []
    assert pg_store.claim_activities("w1", T0, at(30), 10) == []
