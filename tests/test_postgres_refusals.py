"""PostgreSQL: a step sends its writes and its COMMIT before its guard answers, so the server
itself must undo a refused step; these are the races only row locks between two connections
can show. The conformance suite covers every other refusal on both backends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url
from test_store_conformance import T0, at, claim_one, first_step, leased_activity, on_result

from durafn.errors import InstanceExistsError
from durafn.replay.history import EventRaised, TaskCompleted
from durafn.store import NewMessage, Store
from durafn.store.base import StepCommit
from durafn.store.pgwire import WireConnection

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
