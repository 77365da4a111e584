"""The Store conformance suite: every backend must pass every test here (the `store` fixture)."""

from __future__ import annotations

import base64
import functools
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from durafn.errors import (
    BadRequestError,
    InstanceExistsError,
    InstanceNotFoundError,
    InvalidInstanceStateError,
    StoreLockedError,
    StoreSchemaError,
)
from durafn.models import (
    ACTIVE_STATUSES,
    FailureDetails,
    InstanceQuery,
    OrchestrationRuntimeStatus,
)
from durafn.replay.history import (
    EventRaised,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    OrchestratorStarted,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from durafn.store import (
    ActivityWorkItem,
    NewActivity,
    NewInstance,
    NewMessage,
    NewSubOrchestration,
    OrchestrationWorkItem,
    StepCommit,
    Store,
    Work,
    WorkListener,
    open_store,
)
from durafn.store.base import SCHEDULE_RUNS_KEPT
from durafn.store.migrations import SCHEMA_VERSION, UPGRADABLE_FROM

S = OrchestrationRuntimeStatus
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
LEASE = timedelta(seconds=30)
FINAL = [S.Completed, S.Failed, S.Terminated]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def is_sqlite(store: Store) -> bool:
    return store.url.startswith("sqlite")


def claim(
    store: Store, worker: str = "w1", now: datetime = T0, limit: int = 10
) -> list[OrchestrationWorkItem]:
    return store.claim_orchestrations(worker, now, now + LEASE, limit)


def claim_one(store: Store, worker: str = "w1", now: datetime = T0) -> OrchestrationWorkItem:
    items = claim(store, worker, now)
    assert len(items) == 1, items
    return items[0]


def commit(
    store: Store,
    item: OrchestrationWorkItem,
    *extra: HistoryEvent,
    worker: str = "w1",
    status: OrchestrationRuntimeStatus = S.Running,
    now: datetime = T0,
    **fields: Any,
) -> bool:
    """Commit a step that consumes every message of ``item`` and records them in history."""
    events = [OrchestratorStarted(timestamp=now), *(m.event for m in item.messages), *extra]
    step = StepCommit(
        instance_id=item.instance.instance_id,
        execution_id=item.instance.execution_id,
        worker_id=worker,
        consumed=[m.id for m in item.messages],
        history=events,
        status=status,
        **fields,
    )
    return store.commit_step(step, now) is not None


def started(
    store: Store,
    instance_id: str = "i1",
    status: OrchestrationRuntimeStatus = S.Running,
    now: datetime = T0,
    **fields: Any,
) -> OrchestrationWorkItem:
    """Create ``instance_id`` and commit its first step with ``status``; returns the claim."""
    store.create_instance(instance_id, "orch", '"input"', f"{instance_id}-e1", now)
    item = claim_one(store, now=now)
    assert commit(store, item, status=status, now=now, **fields)
    return item


def raised(name: str, now: datetime = T0) -> EventRaised:
    return EventRaised(timestamp=now, name=name, input=None)


def names(item: OrchestrationWorkItem) -> list[str]:
    return [getattr(m.event, "name", m.event.event_type) for m in item.messages]


def enqueue(store: Store, instance_id: str, event: HistoryEvent, now: datetime = T0) -> None:
    store.enqueue_message(instance_id, event, now, allowed=ACTIVE_STATUSES, action="send to")


@pytest.fixture
def reopen(store: Store) -> Iterator[Callable[[], Store]]:
    """Open more stores on the same database (as other processes would); closed at the end."""
    opened: list[Store] = []

    def open_another() -> Store:
        opened.append(open_store(store.url))
        return opened[-1]

    yield open_another
    for other in opened:
        other.close()


# -- create_instance -------------------------------------------------------------------------


def test_create_makes_pending_instance_with_execution_started_message(store: Store) -> None:
    store.create_instance("i1", "orch", '{"a": 1}', "e1", T0)

    record = store.get_instance("i1")
    assert record is not None
    assert (record.instance_id, record.name, record.execution_id) == ("i1", "orch", "e1")
    assert record.status is S.Pending
    assert (record.input, record.output, record.custom_status) == ('{"a": 1}', None, None)
    assert record.created_time == T0 and record.last_updated_time == T0
    assert record.created_time.tzinfo is not None
    assert (record.parent_instance_id, record.parent_task_id, record.history_length) == (
        None,
        None,
        0,
    )
    assert store.get_history("i1") == []

    item = claim_one(store)
    assert item.instance == record
    [message] = item.messages
    assert message.event == ExecutionStarted(
        timestamp=T0, name="orch", input='{"a": 1}', execution_id="e1"
    )


def test_unknown_instance_has_no_record_and_no_history(store: Store) -> None:
    assert store.get_instance("nope") is None
    assert store.get_history("nope") == []


def test_times_come_back_as_the_same_instant_in_utc(store: Store) -> None:
    local = T0.astimezone(timezone(timedelta(hours=2)))
    store.create_instance("i1", "orch", None, "e1", local)
    record = store.get_instance("i1")
    assert record is not None
    assert record.created_time == T0
    assert record.created_time.utcoffset() == timedelta(0)


@pytest.mark.parametrize("status", [S.Pending, S.Running, S.Suspended])
def test_create_refused_while_active(store: Store, status: OrchestrationRuntimeStatus) -> None:
    if status is S.Pending:
        store.create_instance("i1", "orch", None, "i1-e1", T0)
    else:
        started(store, status=status)

    with pytest.raises(InstanceExistsError) as raised_error:
        store.create_instance("i1", "other", None, "e2", at(1))

    assert raised_error.value.status == status.value
    record = store.get_instance("i1")
    assert record is not None and record.execution_id == "i1-e1" and record.status is status


@pytest.mark.parametrize("status", FINAL)
def test_create_replaces_finished_instance(
    store: Store, status: OrchestrationRuntimeStatus
) -> None:
    started(store, activities=[NewActivity(1, "act", None)])
    enqueue(store, "i1", raised("late"), at(1))
    [running] = claim(store, now=at(1))
    assert commit(store, running, status=status, output='"done"', now=at(1))

    store.create_instance("i1", "orch2", '"new"', "e2", at(2))

    record = store.get_instance("i1")
    assert record is not None
    assert (record.name, record.execution_id, record.status) == ("orch2", "e2", S.Pending)
    assert (record.input, record.output, record.history_length) == ('"new"', None, 0)
    assert record.created_time == at(2)
    assert store.get_history("i1") == []
    assert store.claim_activities("w1", at(100), at(130), 10) == []
    [fresh] = claim(store, now=at(100))
    assert [m.event.event_type for m in fresh.messages] == ["ExecutionStarted"]


@pytest.mark.parametrize("separate_stores", [False, True], ids=["shared", "separate"])
def test_concurrent_creates_of_one_id_have_one_winner(
    store: Store, reopen: Callable[[], Store], separate_stores: bool
) -> None:
    stores = [reopen() if separate_stores else store for _ in range(16)]
    barrier = threading.Barrier(len(stores))
    outcomes: list[str] = []
    lock = threading.Lock()

    def start(n: int) -> None:
        barrier.wait()
        try:
            stores[n].create_instance("single", "orch", None, f"e{n}", T0)
            outcome = "won"
        except InstanceExistsError:
            outcome = "exists"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=start, args=(n,)) for n in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["exists"] * 15 + ["won"]
    [item] = claim(store)
    assert len(item.messages) == 1


# -- claim_orchestrations ----------------------------------------------------------------------


def test_claim_leases_the_instance_until_the_lease_expires(store: Store) -> None:
    store.create_instance("i1", "orch", None, "e1", T0)
    first = claim_one(store, "w1")

    assert claim(store, "w2", now=T0) == []
    assert claim(store, "w2", now=T0 + LEASE - timedelta(seconds=1)) == []
    second = claim_one(store, "w2", now=T0 + LEASE)

    assert [m.id for m in second.messages] == [m.id for m in first.messages]
    assert not commit(store, first, worker="w1")
    assert commit(store, second, worker="w2")


def test_claim_returns_messages_in_arrival_order(store: Store) -> None:
    started(store)
    for name in ["a", "b", "c", "d", "e"]:
        enqueue(store, "i1", raised(name))

    item = claim_one(store)

    assert names(item) == ["a", "b", "c", "d", "e"]
    assert [m.id for m in item.messages] == sorted(m.id for m in item.messages)


def test_claim_honours_limit_oldest_messages_first(store: Store) -> None:
    for n in range(5):
        store.create_instance(f"i{n}", "orch", None, "e1", at(n))

    first = claim(store, "w1", now=at(10), limit=2)
    second = claim(store, "w2", now=at(10), limit=2)
    third = claim(store, "w3", now=at(10), limit=2)

    assert [i.instance.instance_id for i in first] == ["i0", "i1"]
    assert [i.instance.instance_id for i in second] == ["i2", "i3"]
    assert [i.instance.instance_id for i in third] == ["i4"]
    assert claim(store, "w4", now=at(10)) == []


def test_concurrent_claims_never_share_an_instance(
    store: Store, reopen: Callable[[], Store]
) -> None:
    for n in range(40):
        store.create_instance(f"i{n:02}", "orch", None, "e1", T0)
    stores = [reopen() for _ in range(4)] * 2
    barrier = threading.Barrier(len(stores))
    claimed: list[str] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        barrier.wait()
        for _ in range(10):
            items = claim(stores[n], f"w{n}", limit=3)
            with lock:
                claimed.extend(item.instance.instance_id for item in items)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(claimed) == [f"i{n:02}" for n in range(40)]


def test_concurrent_steps_messaging_each_other_all_commit(
    store: Store, reopen: Callable[[], Store]
) -> None:
    ring = [f"r{n}" for n in range(6)]
    for instance_id in ring:
        store.create_instance(instance_id, "orch", None, "e1", T0)
    stores = [reopen() for _ in range(3)] * 2
    barrier = threading.Barrier(len(stores))
    failures: list[BaseException] = []
    steps: list[str] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        barrier.wait()
        try:
            for _ in range(15):
                for item in claim(stores[n], f"w{n}", limit=2):
                    me = ring.index(item.instance.instance_id)
                    neighbours = [ring[(me + 1) % 6], ring[(me - 1) % 6]]
                    messages = [NewMessage(to, raised("hi")) for to in neighbours]
                    assert commit(stores[n], item, worker=f"w{n}", messages=messages)
                    with lock:
                        steps.append(item.instance.instance_id)
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert len(steps) >= len(ring)
    # Every message sent arrived exactly once: each history holds one OrchestratorStarted per
    # step plus what the step consumed (ExecutionStarted once, then the neighbours' messages).
    recorded = sum(len(store.get_history(i)) for i in ring) - len(steps) - len(ring)
    pending = sum(len(item.messages) for item in claim(store, "final", limit=len(ring)))
    assert recorded + pending == 2 * len(steps)


def test_suspended_instance_is_claimed_only_for_control_messages(store: Store) -> None:
    started(store, status=S.Suspended)
    enqueue(store, "i1", raised("ev"))
    assert claim(store) == []

    enqueue(store, "i1", ExecutionResumed(timestamp=T0, reason="go on"))
    item = claim_one(store)
    assert [m.event.event_type for m in item.messages] == ["ExecutionResumed"]
    assert commit(store, item, status=S.Running)

    assert names(claim_one(store)) == ["ev"]


@pytest.mark.parametrize("control", [ExecutionTerminated, ExecutionSuspended])
def test_suspended_instance_takes_every_control_message(
    store: Store, control: type[ExecutionTerminated | ExecutionSuspended]
) -> None:
    started(store, status=S.Suspended)
    enqueue(store, "i1", raised("ev"))
    enqueue(store, "i1", control(timestamp=T0, reason="r"))

    item = claim_one(store)

    assert [m.event.event_type for m in item.messages] == [control.__name__]


def test_messages_of_another_execution_are_dropped(store: Store) -> None:
    started(store, "parent")
    started(store, "child")
    enqueue(store, "parent", raised("valid"))
    enqueue(store, "child", raised("poke"))
    child = next(i for i in claim(store) if i.instance.instance_id == "child")
    store.abandon_orchestration("parent", "w1")
    old = TaskCompleted(timestamp=T0, task_id=7, result='"stale"')

    assert commit(
        store,
        child,
        messages=[
            NewMessage("parent", old, execution_id="an-old-execution"),
            NewMessage("parent", raised("current"), execution_id="parent-e1"),
        ],
    )

    item = claim_one(store, "w2")
    assert names(item) == ["valid", "current"]
    assert commit(store, item, worker="w2")
    assert claim(store, "w3") == []


def test_only_stale_messages_do_not_make_an_instance_claimable(store: Store) -> None:
    started(store, "a")
    started(store, "b")
    enqueue(store, "b", raised("go"))
    item = claim_one(store)
    assert commit(store, item, messages=[NewMessage("a", raised("old"), execution_id="gone")])

    assert claim(store) == []


# -- commit_step -------------------------------------------------------------------------------


def test_commit_appends_history_in_order(store: Store) -> None:
    store.create_instance("i1", "orch", None, "e1", T0)
    first = claim_one(store)
    scheduled = TaskScheduled(timestamp=T0, task_id=0, name="act", input='"x"')
    assert commit(store, first, scheduled, activities=[NewActivity(0, "act", '"x"')])
    [work] = store.claim_activities("w1", T0, T0 + LEASE, 10)
    result = TaskCompleted(timestamp=at(1), task_id=0, result='"y"')
    assert store.complete_activity(work, result, at(1))

    second = claim_one(store, now=at(1))
    done = ExecutionCompleted(timestamp=at(1), status=S.Completed, result='"y"')
    assert commit(store, second, done, status=S.Completed, output='"y"', now=at(1))

    assert store.get_history("i1") == [
        OrchestratorStarted(timestamp=T0),
        first.messages[0].event,
        scheduled,
        OrchestratorStarted(timestamp=at(1)),
        result,
        done,
    ]
    record = store.get_instance("i1")
    assert record is not None and record.history_length == 6


def test_a_step_with_more_events_than_one_insert_takes_keeps_them_all_in_order(
    store: Store,
) -> None:
    # A step's events go in as few statements as the row bound allows (32 rows each).
    store.create_instance("i1", "orch", None, "e1", T0)
    first = claim_one(store)
    width = 70
    scheduled = [
        TaskScheduled(timestamp=T0, task_id=n, name="act", input=str(n)) for n in range(width)
    ]
    work = [NewActivity(n, "act", str(n)) for n in range(width)]
    assert commit(store, first, *scheduled, activities=work)

    started_event = first.messages[0].event
    assert store.get_history("i1") == [OrchestratorStarted(timestamp=T0), started_event, *scheduled]
    record = store.get_instance("i1")
    assert record is not None and record.history_length == width + 2


def test_history_round_trips_every_field(store: Store) -> None:
    failure = FailureDetails("ValueError", "bad", "Traceback ...", "act")
    events: list[HistoryEvent] = [
        TaskFailed(timestamp=at(1), task_id=3, failure=failure),
        TimerCreated(timestamp=at(2), task_id=4, fire_at=at(60)),
        ExecutionCompleted(timestamp=at(3), status=S.Failed, failure=failure),
    ]
    store.create_instance("i1", "orch", None, "e1", T0)
    item = claim_one(store)

    assert commit(store, item, *events, status=S.Failed, output='{"error": "ValueError"}')

    assert store.get_history("i1")[-3:] == events


def test_commit_sets_status_output_custom_status_and_time(store: Store) -> None:
    store.create_instance("i1", "orch", None, "e1", T0)
    item = claim_one(store)

    assert commit(store, item, custom_status='"half"', output=None, now=at(5))

    record = store.get_instance("i1")
    assert record is not None
    assert (record.status, record.custom_status, record.output) == (S.Running, '"half"', None)
    assert record.last_updated_time == at(5) and record.created_time == T0


def test_commit_creates_activities_oldest_first(store: Store) -> None:
    store.create_instance("i1", "orch", None, "e1", T0)
    item = claim_one(store)
    assert commit(store, item, activities=[NewActivity(n, f"act{n}", f"{n}") for n in range(3)])

    work = store.claim_activities("w1", T0, T0 + LEASE, 10)

    assert [(w.task_id, w.name, w.input, w.attempt) for w in work] == [
        (0, "act0", "0", 1),
        (1, "act1", "1", 1),
        (2, "act2", "2", 1),
    ]
    assert {(w.instance_id, w.execution_id) for w in work} == {("i1", "e1")}
    assert store.claim_activities("w1", T0, T0 + LEASE, 10) == []


def test_timer_is_claimable_only_when_due(store: Store) -> None:
    store.create_instance("i1", "orch", None, "e1", T0)
    item = claim_one(store)
    fired = TimerFired(timestamp=at(60), task_id=0, fire_at=at(60))
    timer = NewMessage("i1", fired, visible_at=at(60), execution_id="e1")
    assert commit(
        store, item, TimerCreated(timestamp=T0, task_id=0, fire_at=at(60)), messages=[timer]
    )

    assert claim(store, now=at(59)) == []
    assert store.next_visible_time(at(1)) == at(60)
    assert store.next_visible_time(at(60)) is None
    due = claim_one(store, now=at(60))
    assert [m.event for m in due.messages] == [fired]


def test_next_visible_time_is_none_without_future_messages(store: Store) -> None:
    assert store.next_visible_time(T0) is None
    store.create_instance("i1", "orch", None, "e1", T0)
    assert store.next_visible_time(T0) is None


def test_commit_keeps_the_lease_when_asked(store: Store) -> None:
    store.create_instance("i1", "orch", None, "e1", T0)
    item = claim_one(store)
    assert commit(store, item, release=False)
    enqueue(store, "i1", raised("ev"))

    assert claim(store, "w2") == []
    more = store.claim_orchestrations("w1", T0 + LEASE, T0 + 2 * LEASE, 10)
    assert [names(i) for i in more] == [["ev"]]


def test_commit_sends_messages_only_to_live_instances(store: Store) -> None:
    started(store, "live")
    started(store, "done")
    enqueue(store, "done", raised("end"))
    [ending] = claim(store)
    assert commit(store, ending, status=S.Completed)
    store.create_instance("sender", "orch", None, "e1", T0)
    sender = claim_one(store)
    msgs = [NewMessage(t, raised(f"to-{t}")) for t in ("live", "done", "missing")]

    assert commit(store, sender, messages=msgs)

    [item] = claim(store)
    assert item.instance.instance_id == "live" and names(item) == ["to-live"]
    assert store.get_instance("missing") is None


def test_commit_starts_sub_orchestrations(store: Store) -> None:
    store.create_instance("parent", "orch", None, "p1", T0)
    item = claim_one(store)
    child = NewSubOrchestration("child", "sub", '"in"', "c1", parent_task_id=4)

    assert commit(store, item, sub_orchestrations=[child])

    record = store.get_instance("child")
    assert record is not None
    assert (record.name, record.status, record.input, record.execution_id) == (
        "sub",
        S.Pending,
        '"in"',
        "c1",
    )
    assert (record.parent_instance_id, record.parent_task_id) == ("parent", 4)
    [claimed] = claim(store)
    assert claimed.messages[0].event == ExecutionStarted(
        timestamp=T0,
        name="sub",
        input='"in"',
        execution_id="c1",
        parent_instance_id="parent",
        parent_task_id=4,
    )


def test_sub_orchestration_already_active_fails_the_parent_task(store: Store) -> None:
    started(store, "child")
    store.create_instance("parent", "orch", None, "p1", T0)
    item = claim_one(store)
    subs = [
        NewSubOrchestration("child", "sub", None, "c2", parent_task_id=1),
        NewSubOrchestration("twin", "sub", None, "t1", parent_task_id=2),
        NewSubOrchestration("twin", "sub", None, "t2", parent_task_id=3),
    ]

    assert commit(store, item, sub_orchestrations=subs)

    child = store.get_instance("child")
    assert child is not None and child.execution_id == "child-e1" and child.status is S.Running
    twin = store.get_instance("twin")
    assert twin is not None and twin.execution_id == "t1"
    parent = next(i for i in claim(store) if i.instance.instance_id == "parent")
    failed = [m.event for m in parent.messages]
    assert all(isinstance(e, SubOrchestrationInstanceFailed) for e in failed)
    details = [
        (e.task_id, e.failure) for e in failed if isinstance(e, SubOrchestrationInstanceFailed)
    ]
    assert [(task, f.error_type, f.function) for task, f in details] == [
        (1, "InstanceExistsError", "sub"),
        (3, "InstanceExistsError", "sub"),
    ]
    assert "'child' already exists" in details[0][1].message


def test_sub_orchestration_replaces_a_finished_child(store: Store) -> None:
    started(store, "child", status=S.Completed, output='"old"')
    store.create_instance("parent", "orch", None, "p1", T0)
    item = claim_one(store)

    assert commit(
        store, item, sub_orchestrations=[NewSubOrchestration("child", "sub", None, "c2", 1)]
    )

    child = store.get_instance("child")
    assert child is not None
    assert (child.execution_id, child.status, child.output, child.history_length) == (
        "c2",
        S.Pending,
        None,
        0,
    )
    assert store.get_history("child") == []


def test_commit_with_a_lost_lease_writes_nothing(store: Store) -> None:
    store.create_instance("i1", "orch", None, "e1", T0)
    stale = claim_one(store, "w1")
    taken = claim_one(store, "w2", now=T0 + LEASE)

    assert not commit(
        store,
        stale,
        TaskScheduled(timestamp=T0, task_id=0, name="act"),
        worker="w1",
        status=S.Completed,
        activities=[NewActivity(0, "act", None)],
        messages=[NewMessage("i1", raised("self"))],
        sub_orchestrations=[NewSubOrchestration("kid", "sub", None, "k1", 0)],
    )

    record = store.get_instance("i1")
    assert record is not None and record.status is S.Pending and record.history_length == 0
    assert store.get_history("i1") == []
    assert store.get_instance("kid") is None
    assert store.claim_activities("w1", at(100), at(130), 10) == []
    assert commit(store, taken, worker="w2", now=T0 + LEASE)
    assert claim(store, "w3", now=at(100)) == []


def test_commit_for_another_execution_writes_nothing(store: Store) -> None:
    store.create_instance("i1", "orch", None, "e1", T0)
    item = claim_one(store)
    step = StepCommit("i1", "e0", "w1", [m.id for m in item.messages], [], S.Completed)

    assert store.commit_step(step, T0) is None

    record = store.get_instance("i1")
    assert record is not None and record.status is S.Pending


def test_commit_without_a_lease_is_refused(store: Store) -> None:
    store.create_instance("i1", "orch", None, "e1", T0)

    assert store.commit_step(StepCommit("i1", "e1", "w1", [], [], S.Running), T0) is None


@pytest.mark.parametrize("status", FINAL)
def test_finishing_deletes_inbox_and_work_and_refuses_messages(
    store: Store, status: OrchestrationRuntimeStatus
) -> None:
    timer = NewMessage("i1", raised("timer"), visible_at=at(60), execution_id="i1-e1")
    started(
        store, activities=[NewActivity(0, "a", None), NewActivity(1, "b", None)], messages=[timer]
    )
    [work, _] = store.claim_activities("w1", T0, T0 + LEASE, 10)
    enqueue(store, "i1", raised("first"))
    enqueue(store, "i1", raised("second"))
    item = claim_one(store)
    item = OrchestrationWorkItem(item.instance, item.messages[:1])

    assert commit(store, item, status=status, output='"end"')

    assert claim(store, now=at(1000)) == []
    assert store.next_visible_time(T0) is None
    assert store.claim_activities("w2", at(1000), at(1030), 10) == []
    assert not store.complete_activity(work, TaskCompleted(timestamp=T0, task_id=0), T0)
    with pytest.raises(InvalidInstanceStateError) as refused:
        enqueue(store, "i1", raised("late"))
    assert refused.value.status == status.value and refused.value.action == "send to"
    record = store.get_instance("i1")
    assert record is not None and record.status is status and record.output == '"end"'


def test_continue_as_new_replaces_history_and_keeps_buffered_events(store: Store) -> None:
    timer = NewMessage("i1", raised("old-timer"), visible_at=at(60), execution_id="i1-e1")
    started(store, activities=[NewActivity(0, "act", None)], messages=[timer])
    enqueue(store, "i1", raised("consumed"))
    enqueue(store, "i1", raised("buffered"))
    item = claim_one(store)
    first_only = OrchestrationWorkItem(item.instance, item.messages[:1])
    restart = ExecutionStarted(timestamp=at(1), name="orch", input='"next"', execution_id="e2")

    assert commit(
        store,
        first_only,
        now=at(1),
        new_execution_id="e2",
        new_input='"next"',
        messages=[
            NewMessage("i1", restart, execution_id="e2"),
            NewMessage("i1", raised("carried"), execution_id="e2"),
        ],
    )

    record = store.get_instance("i1")
    assert record is not None
    assert (record.execution_id, record.input, record.history_length) == ("e2", '"next"', 2)
    assert [e.event_type for e in store.get_history("i1")] == ["OrchestratorStarted", "EventRaised"]
    assert store.claim_activities("w1", at(100), at(130), 10) == []
    assert store.next_visible_time(at(1)) is None
    second = claim_one(store, now=at(2))
    # events carried over arrived before the unconsumed 'buffered' one, so they come first
    assert names(second) == ["orch", "carried", "buffered"]
    assert not commit(store, first_only, now=at(2))  # the old execution is gone
    assert commit(store, second, now=at(2))
    history = store.get_history("i1")
    assert [e.event_type for e in history] == [
        "OrchestratorStarted",
        "EventRaised",
        "OrchestratorStarted",
        "ExecutionStarted",
        "EventRaised",
        "EventRaised",
    ]
    assert history[2] == OrchestratorStarted(timestamp=at(2))


def test_continue_as_new_history_starts_the_new_execution(store: Store) -> None:
    store.create_instance("i1", "orch", None, "e1", T0)
    item = claim_one(store)
    assert commit(store, item)
    enqueue(store, "i1", raised("go"))
    again = claim_one(store)
    fresh: list[HistoryEvent] = [
        ExecutionStarted(timestamp=at(1), name="orch", input="2", execution_id="e2")
    ]

    step = StepCommit("i1", "e1", "w1", [m.id for m in again.messages], fresh, S.Running)
    step.new_execution_id = "e2"
    step.new_input = "2"
    assert store.commit_step(step, at(1)) is not None

    assert store.get_history("i1") == fresh
    record = store.get_instance("i1")
    assert record is not None and record.history_length == 1


def test_abandon_makes_messages_claimable_again(store: Store) -> None:
    store.create_instance("i1", "orch", None, "e1", T0)
    item = claim_one(store, "w1")

    store.abandon_orchestration("i1", "someone-else")
    assert claim(store, "w2") == []
    store.abandon_orchestration("i1", "w1")

    again = claim_one(store, "w2")
    assert [m.id for m in again.messages] == [m.id for m in item.messages]


# -- activities --------------------------------------------------------------------------------


def activity(store: Store, count: int = 1) -> list[ActivityWorkItem]:
    started(store, activities=[NewActivity(n, "act", f"{n}") for n in range(count)])
    return store.claim_activities("w1", T0, T0 + LEASE, 10)


def test_complete_activity_puts_the_result_in_the_inbox(store: Store) -> None:
    [work] = activity(store)
    result = TaskCompleted(timestamp=at(1), task_id=0, result='"ok"')

    assert store.complete_activity(work, result, at(1))

    item = claim_one(store, now=at(1))
    assert [m.event for m in item.messages] == [result]
    assert store.claim_activities("w2", at(100), at(130), 10) == []
    assert not store.complete_activity(work, result, at(2))


def test_expired_activity_is_claimed_again_with_the_next_attempt(store: Store) -> None:
    [work] = activity(store)
    assert work.attempt == 1

    assert store.claim_activities("w2", T0 + LEASE - timedelta(seconds=1), at(100), 10) == []
    [again] = store.claim_activities("w2", T0 + LEASE, at(100), 10)
    assert (again.id, again.attempt) == (work.id, 2)

    assert store.complete_activity(work, TaskCompleted(timestamp=T0, task_id=0), at(40))
    assert not store.complete_activity(again, TaskCompleted(timestamp=T0, task_id=0), at(41))
    item = claim_one(store, now=at(50))
    assert len(item.messages) == 1


def test_complete_activity_of_a_restarted_instance_is_refused(store: Store) -> None:
    [work] = activity(store)
    enqueue(store, "i1", ExecutionTerminated(timestamp=T0, reason="stop"))
    item = claim_one(store)
    assert commit(store, item, status=S.Terminated)
    store.create_instance("i1", "orch", None, "e2", at(1))

    assert not store.complete_activity(work, TaskCompleted(timestamp=T0, task_id=0), at(2))
    assert [m.event.event_type for m in claim_one(store, now=at(2)).messages] == [
        "ExecutionStarted"
    ]


def test_concurrent_activity_claims_never_share_an_item(
    store: Store, reopen: Callable[[], Store]
) -> None:
    activity(store, count=0)
    store.create_instance("i2", "orch", None, "e1", T0)
    item = claim_one(store)
    assert commit(store, item, activities=[NewActivity(n, "act", None) for n in range(40)])
    stores = [reopen() for _ in range(4)] * 2
    barrier = threading.Barrier(len(stores))
    claimed: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        barrier.wait()
        for _ in range(10):
            items = stores[n].claim_activities(f"w{n}", T0, T0 + LEASE, 3)
            with lock:
                claimed.extend(item.id for item in items)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(claimed) == 40 and len(set(claimed)) == 40


# -- leases ------------------------------------------------------------------------------------


def test_renew_leases_extends_orchestrations_and_activities(store: Store) -> None:
    [work] = activity(store)
    enqueue(store, "i1", raised("ev"))
    claim_one(store, "w1")

    store.renew_leases("w1", at(120))

    assert claim(store, "w2", now=at(60)) == []
    assert store.claim_activities("w2", at(60), at(90), 10) == []
    assert len(claim(store, "w2", now=at(120))) == 1
    assert [w.id for w in store.claim_activities("w2", at(120), at(150), 10)] == [work.id]


def test_release_leases_frees_everything_the_worker_holds(store: Store) -> None:
    [work] = activity(store)
    enqueue(store, "i1", raised("ev"))
    claim_one(store, "w1")
    store.create_instance("other", "orch", None, "e1", T0)
    claim_one(store, "w3")

    store.release_leases("w1")

    [item] = claim(store, "w2")
    assert item.instance.instance_id == "i1"
    [again] = store.claim_activities("w2", T0, T0 + LEASE, 10)
    assert (again.id, again.attempt) == (work.id, 2)


# -- enqueue_message ---------------------------------------------------------------------------


def test_enqueue_to_an_unknown_instance_raises_not_found(store: Store) -> None:
    with pytest.raises(InstanceNotFoundError):
        enqueue(store, "nope", raised("ev"))


def test_enqueue_checks_the_allowed_statuses(store: Store) -> None:
    started(store)

    with pytest.raises(InvalidInstanceStateError) as refused:
        store.enqueue_message(
            "i1", raised("ev"), T0, allowed=frozenset({S.Suspended}), action="resume"
        )

    assert (refused.value.status, refused.value.action) == ("Running", "resume")
    assert "resume" in str(refused.value)
    assert claim(store) == []


# -- query_instances ---------------------------------------------------------------------------


def populate(store: Store) -> None:
    started(store, "run-1", now=at(1))
    started(store, "run-2", status=S.Suspended, now=at(2))
    started(store, "done-1", status=S.Completed, now=at(3))
    started(store, "fail-1", status=S.Failed, now=at(4))
    store.create_instance("Run_%x", "orch", None, "e1", at(5))


def ids(records: Any) -> list[str]:
    return [r.instance_id for r in records]


def test_query_filters_by_status_time_and_prefix(store: Store) -> None:
    populate(store)

    def query(**fields: Any) -> list[str]:
        records, token = store.query_instances(InstanceQuery(**fields))
        assert token is None
        return ids(records)

    assert query() == ["run-1", "run-2", "done-1", "fail-1", "Run_%x"]
    assert query(runtime_status=frozenset({S.Running, S.Pending})) == ["run-1", "Run_%x"]
    assert query(runtime_status=frozenset()) == []
    assert query(created_time_from=at(2), created_time_to=at(4)) == ["run-2", "done-1", "fail-1"]
    assert query(instance_id_prefix="run-") == ["run-1", "run-2"]
    assert query(instance_id_prefix="Run_%") == ["Run_%x"]
    assert query(instance_id_prefix="run_") == []
    assert query(instance_id_prefix="r", runtime_status=frozenset({S.Suspended})) == ["run-2"]


def test_query_pages_without_duplicates_or_gaps(store: Store) -> None:
    for n in range(7):
        store.create_instance(f"a{n}", "orch", None, "e1", at(n // 2))  # pairs share a time
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        records, token = store.query_instances(InstanceQuery(top=3, continuation_token=token))
        seen += ids(records)
        pages += 1
        if pages == 1:
            store.create_instance("late-1", "orch", None, "e1", at(100))
            store.create_instance("late-0", "orch", None, "e1", at(100))
        if token is None:
            break

    assert seen == ["a0", "a1", "a2", "a3", "a4", "a5", "a6", "late-0", "late-1"]
    assert pages == 3


def test_query_last_full_page_has_no_token(store: Store) -> None:
    for n in range(3):
        store.create_instance(f"a{n}", "orch", None, "e1", at(n))

    records, token = store.query_instances(InstanceQuery(top=3))

    assert ids(records) == ["a0", "a1", "a2"] and token is None


@pytest.mark.parametrize(
    "token",
    [
        "not a token",
        base64.urlsafe_b64encode(b"{}").decode(),
        base64.urlsafe_b64encode(b'["2030-01-01T00:00:00"]').decode(),
        base64.urlsafe_b64encode(b'["2030-01-01T00:00:00", "a"]').decode(),  # no offset
        base64.urlsafe_b64encode(b'["yesterday", "a"]').decode(),
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        "\u00e9\u00e9",
    ],
)
def test_malformed_continuation_token_is_a_bad_request(store: Store, token: str) -> None:
    with pytest.raises(BadRequestError, match="continuation token"):
        store.query_instances(InstanceQuery(top=2, continuation_token=token))


def test_query_top_below_one_is_a_bad_request(store: Store) -> None:
    with pytest.raises(BadRequestError, match="top"):
        store.query_instances(InstanceQuery(top=0))


# -- purge -------------------------------------------------------------------------------------


def test_purge_instance(store: Store) -> None:
    populate(store)

    with pytest.raises(InstanceNotFoundError):
        store.purge_instance("nope")
    with pytest.raises(InvalidInstanceStateError) as refused:
        store.purge_instance("run-1")
    assert refused.value.action == "purge"

    assert store.purge_instance("done-1") == 1
    assert store.get_instance("done-1") is None
    assert store.get_history("done-1") == []
    with pytest.raises(InstanceNotFoundError):
        store.purge_instance("done-1")


def test_purge_instances_deletes_only_finished_matches(store: Store) -> None:
    started(store, "done-2", status=S.Terminated, now=at(6))
    populate(store)

    assert store.purge_instances(InstanceQuery(created_time_to=at(4))) == 2
    assert store.get_instance("done-1") is None and store.get_instance("fail-1") is None
    assert store.get_history("fail-1") == []
    assert store.purge_instances(InstanceQuery(instance_id_prefix="run")) == 0
    assert store.purge_instances(InstanceQuery(runtime_status=frozenset({S.Terminated}))) == 1
    remaining, _ = store.query_instances(InstanceQuery())
    assert ids(remaining) == ["run-1", "run-2", "Run_%x"]


# -- listen: announcements to the other hosts --------------------------------------------------


# SQLite has one host per file, so nothing to listen to (test_sqlite_has_nothing_to_listen_to).
postgres_only = pytest.mark.parametrize(
    "store_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def listener(store: Store) -> Iterator[WorkListener]:
    """A listener on ``store``'s database."""
    opened = store.listen()
    assert opened is not None
    yield opened
    opened.close()


def hear(listener: WorkListener, timeout: float = 5.0) -> Work:
    """Wait for the next announcement, then take whatever else is already on its way."""
    deadline = time.monotonic() + timeout
    heard = Work.NONE
    while not heard and time.monotonic() < deadline:
        heard = listener.wait(deadline - time.monotonic())
    while more := listener.wait(0.05):
        heard |= more
    return heard


def test_sqlite_has_nothing_to_listen_to(store: Store) -> None:
    opened = store.listen()
    assert (opened is None) == is_sqlite(store)
    if opened is not None:
        opened.close()


@postgres_only
def test_another_stores_work_is_announced_on_commit(
    store: Store, listener: WorkListener, reopen: Callable[[], Store]
) -> None:
    other = reopen()

    other.create_instance("i1", "orch", None, "e1", T0)
    assert hear(listener) == Work.ORCHESTRATIONS
    item = claim_one(other)
    timer = NewMessage("i1", TimerFired(timestamp=T0, task_id=1, fire_at=at(60)), at(60), "e1")
    assert commit(other, item, activities=[NewActivity(0, "act", None)], messages=[timer])
    assert hear(listener) == Work.ACTIVITIES | Work.TIMERS
    [work] = other.claim_activities("w1", T0, T0 + LEASE, 10)
    assert other.complete_activity(work, TaskCompleted(timestamp=T0, task_id=0), T0)
    assert hear(listener) == Work.ORCHESTRATIONS
    enqueue(other, "i1", raised("ev"))
    assert hear(listener) == Work.ORCHESTRATIONS
    claim_one(other, "w2")
    other.release_leases("w2")  # a host stopping: the others take its work at once
    assert hear(listener) == Work.ORCHESTRATIONS | Work.ACTIVITIES


@postgres_only
def test_own_and_rolled_back_work_is_not_announced(
    store: Store, listener: WorkListener, reopen: Callable[[], Store]
) -> None:
    store.create_instance("i1", "orch", None, "e1", T0)  # its own host knows already
    with pytest.raises(InstanceExistsError):
        reopen().create_instance("i1", "orch", None, "e2", T0)

    assert listener.wait(0.3) == Work.NONE


@postgres_only
def test_interrupt_ends_a_wait_at_once(store: Store, listener: WorkListener) -> None:
    threading.Timer(0.1, listener.interrupt).start()
    began = time.monotonic()
    assert listener.wait(30) == Work.NONE
    listener.interrupt()  # before the wait: the next one returns at once
    assert listener.wait(30) == Work.NONE
    assert time.monotonic() - began < 5


@postgres_only
def test_listener_reconnects_and_reports_everything_after_a_lost_connection(
    store: Store, reopen: Callable[[], Store]
) -> None:
    # Connections named for this test, so that it cuts exactly its own listener's.
    name = f"durafn_test_{time.monotonic_ns()}"
    tagged = open_store(
        make_url(store.url)
        .update_query_dict({"application_name": name})
        .render_as_string(hide_password=False)
    )
    watching = tagged.listen()
    assert watching is not None
    engine = raw_engine(store)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE application_name = '{name}' AND query = 'LISTEN durafn_work'"
            )
        failed = False
        deadline = time.monotonic() + 5
        while not failed and time.monotonic() < deadline:
            try:
                watching.wait(1)
            except psycopg.OperationalError:
                failed = True
        assert failed
        assert watching.wait(1) == Work.ALL  # what was said while it was away is lost
        reopen().create_instance("i1", "orch", None, "e1", T0)
        assert hear(watching) == Work.ORCHESTRATIONS
    finally:
        watching.close()
        tagged.close()
        engine.dispose()


# -- opening, schema and host lock -------------------------------------------------------------


def raw_engine(store: Store) -> sqlalchemy.Engine:
    url = make_url(store.url)
    if not is_sqlite(store):
        url = url.set(drivername="postgresql+psycopg")
    return sqlalchemy.create_engine(url)


@pytest.mark.parametrize("version", [SCHEMA_VERSION + 1, UPGRADABLE_FROM - 1])
def test_schema_of_another_version_is_refused(store: Store, version: int) -> None:
    engine = raw_engine(store)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"UPDATE schema_info SET version = {version}")

        with pytest.raises(StoreSchemaError) as refused:
            open_store(store.url)
        expected = "upgrade durafn" if version > SCHEMA_VERSION else "new database"
        assert expected in str(refused.value)

        with engine.begin() as conn:
            conn.exec_driver_sql(f"UPDATE schema_info SET version = {SCHEMA_VERSION}")
        open_store(store.url).close()
    finally:
        engine.dispose()


def test_a_version_1_schema_is_upgraded_keeping_its_data(store: Store) -> None:
    store.create_instance("kept", "orch", None, "e1", T0)
    engine = raw_engine(store)
    try:
        with engine.begin() as conn:  # what version 1 had: no schedule_runs
            conn.exec_driver_sql("DROP TABLE schedule_runs")
            conn.exec_driver_sql("UPDATE schema_info SET version = 1")

        upgraded = open_store(store.url)
        try:
            assert upgraded.get_instance("kept") is not None
            assert upgraded.claim_schedule_run("tick", T0, "w1", T0)
        finally:
            upgraded.close()
        with engine.connect() as conn:
            version = conn.exec_driver_sql("SELECT version FROM schema_info").scalar()
        assert version == SCHEMA_VERSION
    finally:
        engine.dispose()


def test_reopening_keeps_the_data(store: Store, reopen: Callable[[], Store]) -> None:
    started(store)

    other = reopen()

    record = other.get_instance("i1")
    assert record is not None and record.status is S.Running and record.history_length == 2


def test_open_store_url_spellings(store: Store) -> None:
    if is_sqlite(store):
        variants = [store.url + "?synchronous=FULL", store.url + "?synchronous=normal"]
        refused = [store.url + "?synchronous=OFF", store.url + "?timeout=3", "sqlite:///:memory:"]
    else:
        rest = store.url.split("://", 1)[1]
        joined = store.url + ("&" if "?" in store.url else "?")
        variants = [f"postgresql://{rest}", f"postgres://{rest}", joined + "synchronous=full"]
        refused = [f"postgresql+asyncpg://{rest}", joined + "synchronous=OFF"]
    for url in variants:
        opened = open_store(url)
        assert opened.get_instance("x") is None
        opened.close()
    if not is_sqlite(store):
        # NORMAL: the server acknowledges commits before flushing them (see docs/guarantees.md)
        for setting, expected in (("NORMAL", "off"), ("FULL", "on")):
            opened = open_store(f"{joined}synchronous={setting}")
            try:
                show = opened._connections.transaction(  # type: ignore[attr-defined]
                    lambda tx: tx.scalar("SHOW synchronous_commit"), write=False
                )
                opened.create_instance(setting, "orch", None, "e", T0)
            finally:
                opened.close()
            assert show == expected
    for url in [*refused, "mysql://u@h/db", "not a url"]:
        with pytest.raises(BadRequestError):
            open_store(url)


def test_attach_host(store: Store, reopen: Callable[[], Store]) -> None:
    store.attach_host("host-1")
    store.attach_host("host-1")  # again, by the same host: harmless
    second = reopen()

    if is_sqlite(store):
        with pytest.raises(StoreLockedError, match="another durafn host is already serving"):
            second.attach_host("host-2")
        store.close()
        second.attach_host("host-2")
    else:
        second.attach_host("host-2")  # PostgreSQL hosts share the database


def test_attach_host_frees_a_dead_hosts_leases_only_on_sqlite(
    store: Store, reopen: Callable[[], Store]
) -> None:
    [work] = activity(store)
    enqueue(store, "i1", raised("ev"))
    claim_one(store, "dead")
    store.close()  # the host was killed: its leases are still in the database
    successor = reopen()

    successor.attach_host("host-2")

    if is_sqlite(store):
        assert len(claim(successor, "w2")) == 1
        assert [w.id for w in successor.claim_activities("w2", T0, T0 + LEASE, 10)] == [work.id]
    else:
        assert claim(successor, "w2") == []
        assert successor.claim_activities("w2", T0, T0 + LEASE, 10) == []


def test_clock_offset_is_the_servers_clock_against_the_hosts_on_postgresql(store: Store) -> None:
    def behind() -> datetime:  # a host whose clock runs 90 s slow
        return datetime.now(timezone.utc) - timedelta(seconds=90)

    offset = store.clock_offset(behind)

    if is_sqlite(store):  # one machine, one clock: nothing to correct
        assert offset is None
    else:
        assert offset is not None
        assert abs(offset - timedelta(seconds=90)) < timedelta(seconds=1)
        ahead = store.clock_offset(lambda: behind() + timedelta(seconds=180))
        assert ahead is not None
        assert abs(ahead + timedelta(seconds=90)) < timedelta(seconds=1)


def test_rewind_replaces_history_requeues_work_and_runs_again(store: Store) -> None:
    scheduled = TaskScheduled(timestamp=T0, task_id=0, name="act", input='"x"')
    item = started(store, status=S.Failed, output='{"error": "KeyError"}')
    length = store.get_instance("i1").history_length  # type: ignore[union-attr]
    kept = [*store.get_history("i1"), scheduled]

    with pytest.raises(InvalidInstanceStateError):  # the history changed since it was read
        store.rewind_instance("i1", length + 1, kept, [NewActivity(0, "act", '"x"')], at(1))
    store.rewind_instance("i1", length, kept, [NewActivity(0, "act", '"x"')], at(1))

    record = store.get_instance("i1")
    assert record is not None
    assert (record.status, record.output, record.history_length) == (S.Running, None, len(kept))
    assert store.get_history("i1") == kept
    [work] = store.claim_activities("w1", at(1), at(1) + LEASE, 10)
    assert (work.name, work.input, work.execution_id) == ("act", '"x"', item.instance.execution_id)
    assert store.complete_activity(
        work, TaskCompleted(timestamp=at(2), task_id=0, result="1"), at(2)
    )
    assert names(claim_one(store, now=at(2))) == ["TaskCompleted"]

    with pytest.raises(InvalidInstanceStateError):  # only a Failed instance rewinds
        store.rewind_instance("i1", len(kept), kept, [], at(3))
    with pytest.raises(InstanceNotFoundError):
        store.rewind_instance("nobody", 0, [], [], at(3))


# -- steps on an activity result, activities leased by their commit ----------------------------


def leased_activity(store: Store) -> tuple[OrchestrationWorkItem, ActivityWorkItem, int]:
    """Start i1 and commit a first step that leases its one activity to w1; the claim, the
    leased item and the history length after the step."""
    store.create_instance("i1", "orch", None, "e1", T0)
    item = claim_one(store)
    scheduled = TaskScheduled(timestamp=T0, task_id=0, name="act", input="0")
    events = [OrchestratorStarted(timestamp=T0), item.messages[0].event, scheduled]
    step = StepCommit(
        "i1",
        "e1",
        "w1",
        [m.id for m in item.messages],
        events,
        S.Running,
        activities=[NewActivity(0, "act", "0")],
        history_length=0,
        lease_activities=1,
        lease_until=T0 + LEASE,
    )
    leased = store.commit_step(step, T0)
    assert leased is not None and len(leased) == 1
    return item, leased[0], len(events)


def on_result(
    work: ActivityWorkItem, length: int, now: datetime, *extra: HistoryEvent, **fields: Any
) -> StepCommit:
    """The step that takes ``work``'s result straight from the worker."""
    result = TaskCompleted(timestamp=now, task_id=work.task_id, result='"r"')
    return StepCommit(
        "i1",
        "e1",
        "w1",
        [],
        [OrchestratorStarted(timestamp=now), result, *extra],
        fields.pop("status", S.Running),
        history_length=length,
        activity_result=work.id,
        **fields,
    )


def test_commit_leases_new_activities_to_the_committer_up_to_the_limit(store: Store) -> None:
    store.create_instance("i1", "orch", None, "e1", T0)
    item = claim_one(store)
    step = StepCommit(
        "i1",
        "e1",
        "w1",
        [m.id for m in item.messages],
        [OrchestratorStarted(timestamp=T0), item.messages[0].event],
        S.Running,
        activities=[NewActivity(n, f"act{n}", f"{n}") for n in range(3)],
        lease_activities=2,
        lease_until=T0 + LEASE,
    )

    leased = store.commit_step(step, T0)

    assert leased is not None
    assert [(w.task_id, w.name, w.input, w.attempt) for w in leased] == [
        (0, "act0", "0", 1),
        (1, "act1", "1", 1),
    ]
    assert all((w.instance_id, w.execution_id) == ("i1", "e1") for w in leased)
    # the third is left for any worker; the leased ones only come back once their lease expires
    [free] = store.claim_activities("w2", at(1), at(31), 10)
    assert (free.task_id, free.attempt) == (2, 1)
    again = store.claim_activities("w2", T0 + LEASE, at(100), 10)
    assert sorted((w.task_id, w.attempt) for w in again) == [(0, 2), (1, 2)]
    assert store.complete_activity(leased[0], TaskCompleted(timestamp=T0, task_id=0), at(40))


def test_leased_activities_are_renewed_and_released_with_their_owner(store: Store) -> None:
    _, work, _ = leased_activity(store)
    store.renew_leases("w1", at(100))
    assert store.claim_activities("w2", at(99), at(130), 10) == []
    store.release_leases("w1")
    [again] = store.claim_activities("w2", at(1), at(31), 10)
    assert again.id == work.id


def test_step_on_an_activity_result_is_one_commit(store: Store) -> None:
    _, work, length = leased_activity(store)
    scheduled = TaskScheduled(timestamp=at(1), task_id=1, name="act", input="1")
    step = on_result(
        work,
        length,
        at(1),
        scheduled,
        activities=[NewActivity(1, "act", "1")],
        lease_activities=1,
        lease_until=at(31),
    )

    leased = store.commit_step(step, at(1))

    assert leased is not None and [w.task_id for w in leased] == [1]
    assert store.get_history("i1")[length:] == step.history
    record = store.get_instance("i1")
    assert record is not None
    assert (record.status, record.history_length) == (S.Running, length + 3)
    # the result was never an inbox message, and the finished work item is gone
    assert claim(store, now=at(2)) == []
    assert not store.complete_activity(work, TaskCompleted(timestamp=at(2), task_id=0), at(2))


def test_step_on_an_activity_result_can_finish_the_instance(store: Store) -> None:
    _, work, length = leased_activity(store)
    done = ExecutionCompleted(timestamp=at(1), status=S.Completed, result='"r"')
    step = on_result(work, length, at(1), done, status=S.Completed, output='"r"')

    assert store.commit_step(step, at(1)) == []

    record = store.get_instance("i1")
    assert record is not None and (record.status, record.output) == (S.Completed, '"r"')


def test_step_on_an_activity_result_waits_behind_inbox_messages(store: Store) -> None:
    _, work, length = leased_activity(store)
    store.enqueue_message("i1", raised("first"), at(1), allowed=ACTIVE_STATUSES, action="raise")

    assert store.commit_step(on_result(work, length, at(2)), at(2)) is None

    # nothing written: the history, the work item and the event are all as they were
    assert len(store.get_history("i1")) == length
    assert store.complete_activity(work, TaskCompleted(timestamp=at(2), task_id=0), at(2))
    item = claim_one(store, now=at(3))
    assert [type(m.event) for m in item.messages] == [EventRaised, TaskCompleted]


def test_step_on_an_activity_result_is_not_held_back_by_a_message_due_later(
    store: Store,
) -> None:
    _, work, length = leased_activity(store)
    # visible from at(60) on, like a durable timer
    store.enqueue_message("i1", raised("later"), at(60), allowed=ACTIVE_STATUSES, action="raise")

    step = on_result(work, length, at(1))
    assert store.commit_step(step, at(1)) == []

    assert store.get_history("i1")[length:] == step.history
    assert claim(store, now=at(59)) == []
    assert [m.event for m in claim_one(store, now=at(60)).messages] == [raised("later")]


@pytest.mark.parametrize("change", ["leased", "moved on", "suspended", "done elsewhere"])
def test_step_on_an_activity_result_is_refused_when_the_instance_changed(
    store: Store, change: str
) -> None:
    _, work, length = leased_activity(store)
    if change == "leased":
        store.enqueue_message("i1", raised("e"), at(1), allowed=ACTIVE_STATUSES, action="raise")
        claim_one(store, "w2", now=at(1))
    elif change == "moved on":
        store.enqueue_message("i1", raised("e"), at(1), allowed=ACTIVE_STATUSES, action="raise")
        assert commit(store, claim_one(store, now=at(1)), now=at(1))
    elif change == "suspended":
        suspend = ExecutionSuspended(timestamp=at(1), reason=None)
        store.enqueue_message("i1", suspend, at(1), allowed=ACTIVE_STATUSES, action="suspend")
        assert commit(store, claim_one(store, now=at(1)), status=S.Suspended, now=at(1))
    else:
        assert store.complete_activity(work, TaskCompleted(timestamp=at(1), task_id=0), at(1))
        assert commit(store, claim_one(store, now=at(1)), now=at(1))
        length = store.get_instance("i1").history_length  # type: ignore[union-attr]
    before = store.get_history("i1")

    assert store.commit_step(on_result(work, length, at(5)), at(5)) is None

    assert store.get_history("i1") == before
    if change != "done elsewhere":  # the refused step took nothing: the work item is still there
        assert store.complete_activity(work, TaskCompleted(timestamp=at(6), task_id=0), at(6))


@pytest.mark.parametrize("item", ["gone", "another execution's"])
def test_step_on_an_activity_result_is_refused_when_its_work_item_is_not_there(
    store: Store, item: str
) -> None:
    """Its work item is how a result is known to be wanted: without it (discarded, or naming
    another execution's work), the step writes nothing, though nothing else changed."""
    _, work, length = leased_activity(store)
    engine = raw_engine(store)
    try:
        with engine.begin() as conn:
            if item == "gone":
                conn.exec_driver_sql(f"DELETE FROM activities WHERE id = {work.id}")
            else:
                conn.exec_driver_sql(
                    f"UPDATE activities SET execution_id = 'e0' WHERE id = {work.id}"
                )
    finally:
        engine.dispose()
    before = store.get_history("i1")

    assert store.commit_step(on_result(work, length, at(5)), at(5)) is None

    assert store.get_history("i1") == before
    record = store.get_instance("i1")
    assert record is not None and record.history_length == length


def test_commit_is_refused_when_the_history_moved_on(store: Store) -> None:
    _, _, length = leased_activity(store)
    stale = StepCommit("i1", "e1", "w1", [], [], S.Running, history_length=length - 1)
    store.enqueue_message("i1", raised("e"), at(1), allowed=ACTIVE_STATUSES, action="raise")
    claimed = claim_one(store, now=at(1))
    assert claimed.instance.history_length == length

    assert store.commit_step(stale, at(1)) is None
    assert commit(store, claimed, now=at(1), history_length=length)


# -- batch (group commit) ----------------------------------------------------------------------


def test_batch_runs_calls_in_order_and_returns_each_outcome(store: Store) -> None:
    outcomes = store.batch(
        [
            lambda: store.create_instance("a", "orch", None, "ea", T0),
            lambda: store.create_instance("a", "orch", None, "again", T0),  # refused alone
            lambda: store.create_instance("b", "orch", None, "eb", T0),
            lambda: store.get_instance("b"),  # sees the write before it
        ]
    )

    assert [o.error is None for o in outcomes] == [True, False, True, True]
    assert isinstance(outcomes[1].error, InstanceExistsError)
    assert outcomes[3].value is not None and outcomes[3].value.execution_id == "eb"
    assert {item.instance.instance_id for item in claim(store)} == {"a", "b"}
    record = store.get_instance("a")
    assert record is not None and record.execution_id == "ea"


def test_a_failing_call_in_a_batch_fails_alone(store: Store) -> None:
    def broken() -> None:
        store.create_instance("c", "orch", None, "ec", T0)
        raise ValueError("not a refusal: the shared transaction is undone")

    outcomes = store.batch(
        [
            lambda: store.create_instance("a", "orch", None, "ea", T0),
            broken,
            lambda: store.create_instance("b", "orch", None, "eb", T0),
        ]
    )

    assert [type(o.error) for o in outcomes] == [type(None), ValueError, type(None)]
    # a and b were run again on their own; c was committed by the rerun of broken, which wrote
    # in its own transaction before failing: each call is as if run alone
    assert {item.instance.instance_id for item in claim(store)} == {"a", "b", "c"}


def test_steps_in_a_batch_return_the_activities_leased_to_them(store: Store) -> None:
    # in a group the replies are read once, before the commit: each step still gets its own
    _, first, length = leased_activity(store)
    store.create_instance("i2", "orch", None, "e2", T0)
    claimed = claim_one(store)
    scheduled = TaskScheduled(timestamp=at(1), task_id=1, name="next", input="1")
    steps = [
        on_result(first, length, at(1), scheduled, activities=[NewActivity(1, "next", "1")]),
        StepCommit(
            "i2",
            "e2",
            "w1",
            [m.id for m in claimed.messages],
            [OrchestratorStarted(timestamp=at(1)), claimed.messages[0].event],
            S.Running,
            activities=[NewActivity(n, f"act{n}", f"{n}") for n in range(2)],
            history_length=0,
        ),
    ]
    for step in steps:
        step.lease_activities, step.lease_until = len(step.activities), at(1) + LEASE

    outcomes = store.batch([functools.partial(store.commit_step, step, at(1)) for step in steps])

    assert [o.error for o in outcomes] == [None, None]
    assert [[(w.instance_id, w.task_id, w.name) for w in o.value] for o in outcomes] == [
        [("i1", 1, "next")],
        [("i2", 0, "act0"), ("i2", 1, "act1")],
    ]
    assert store.claim_activities("w2", at(2), at(2) + LEASE, 10) == []  # all leased to w1


def test_a_refused_step_in_a_batch_writes_nothing_and_the_others_commit(store: Store) -> None:
    # PostgreSQL sends a step's writes before its guard answers: the refusal found afterwards
    # must undo them without losing the group's other calls
    _, work, length = leased_activity(store)
    store.enqueue_message("i1", raised("e"), at(1), allowed=ACTIVE_STATUSES, action="raise")
    assert commit(store, claim_one(store, now=at(1)), now=at(1))  # the history moved on
    before = store.get_history("i1")

    outcomes = store.batch(
        [
            lambda: store.create_instance("a", "orch", None, "ea", T0),
            lambda: store.commit_step(on_result(work, length, at(5)), at(5)),
            lambda: store.create_instance("b", "orch", None, "eb", T0),
        ]
    )

    assert [(o.value, o.error) for o in outcomes] == [(None, None)] * 3
    assert store.get_history("i1") == before
    assert {item.instance.instance_id for item in claim(store, now=at(6))} == {"a", "b"}
    # the activity's work item is still there to be completed the ordinary way
    assert store.complete_activity(work, TaskCompleted(timestamp=at(6), task_id=0), at(6))


def first_step(instance_id: str, execution_id: str, **fields: Any) -> StepCommit:
    """The first step of an instance it creates, scheduling one activity."""
    started = ExecutionStarted(timestamp=T0, name="orch", input='"in"', execution_id=execution_id)
    scheduled = TaskScheduled(timestamp=T0, task_id=0, name="act", input="0")
    return StepCommit(
        instance_id,
        execution_id,
        "w1",
        [],
        [OrchestratorStarted(timestamp=T0), started, scheduled],
        S.Running,
        activities=[NewActivity(0, "act", "0")],
        history_length=0,
        new_instance=NewInstance("orch", '"in"'),
        **fields,
    )


def test_a_first_step_creates_its_instance_in_the_same_commit(store: Store) -> None:
    step = first_step("i1", "e1", lease_activities=1, lease_until=T0 + LEASE)

    leased = store.commit_step(step, T0)

    assert leased is not None and [w.task_id for w in leased] == [0]
    record = store.get_instance("i1")
    assert record is not None
    assert (record.status, record.input, record.execution_id) == (S.Running, '"in"', "e1")
    assert (record.history_length, record.created_time) == (3, T0)
    assert store.get_history("i1") == step.history
    assert claim(store, "w2", now=at(1)) == []  # no inbox message, and no lease left held
    store.enqueue_message("i1", raised("e"), at(1), allowed=ACTIVE_STATUSES, action="raise")
    assert [i.instance.instance_id for i in claim(store, "w2", now=at(1))] == ["i1"]


def test_a_first_step_that_finishes_its_instance_stores_it_finished(store: Store) -> None:
    done = ExecutionCompleted(timestamp=T0, status=S.Completed, result='"r"')
    step = first_step("i1", "e1", output='"r"', custom_status='{"s": 1}')
    step.status = S.Completed
    step.history[-1] = done
    step.activities = []

    assert store.commit_step(step, T0) == []

    record = store.get_instance("i1")
    assert record is not None
    assert (record.status, record.output, record.custom_status) == (S.Completed, '"r"', '{"s": 1}')
    assert (record.history_length, record.last_updated_time) == (3, T0)
    assert store.get_history("i1") == step.history
    # finished, the id can be started again, replacing it
    assert store.commit_step(first_step("i1", "e2"), at(1)) == []
    again = store.get_instance("i1")
    assert again is not None
    assert (again.status, again.output, again.custom_status) == (S.Running, None, None)


def test_a_first_step_of_an_active_id_is_refused_and_writes_nothing(store: Store) -> None:
    store.create_instance("i1", "orch", None, "e1", T0)

    with pytest.raises(InstanceExistsError):
        store.commit_step(first_step("i1", "e2"), T0)

    record = store.get_instance("i1")
    assert record is not None and (record.execution_id, record.status) == ("e1", S.Pending)
    assert store.get_history("i1") == []
    assert store.claim_activities("w1", T0, T0 + LEASE, 10) == []
    # a finished one is replaced, its old history gone
    assert commit(store, claim_one(store), status=S.Completed)
    assert store.commit_step(first_step("i1", "e3"), at(1)) == []
    history = store.get_history("i1")
    assert len(history) == 3 and isinstance(history[1], ExecutionStarted)
    assert history[1].execution_id == "e3"


# -- schedule runs (cron) ----------------------------------------------------------------------


def test_a_schedule_run_is_claimed_once_per_due_time(store: Store) -> None:
    assert store.claim_schedule_run("tick", at(1), "w1", at(1))
    assert not store.claim_schedule_run("tick", at(1), "w2", at(1))  # another host, same run
    assert not store.claim_schedule_run("tick", at(1), "w1", at(2))
    assert store.claim_schedule_run("tick", at(2), "w2", at(2))  # the next run
    assert store.claim_schedule_run("other", at(1), "w2", at(2))  # another schedule


def test_concurrent_claims_of_one_schedule_run_make_one_winner(store: Store) -> None:
    hosts = [f"w{n}" for n in range(8)]
    stores = [open_store(store.url) for _ in hosts]
    barrier = threading.Barrier(len(hosts))
    won: list[str] = []

    def claim(host: str, own: Store) -> None:
        barrier.wait()
        if own.claim_schedule_run("tick", at(1), host, at(1)):
            won.append(host)

    try:
        threads = [
            threading.Thread(target=claim, args=pair) for pair in zip(hosts, stores, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for own in stores:
            own.close()
    assert len(won) == 1


def test_old_schedule_runs_are_forgotten(store: Store) -> None:
    assert store.claim_schedule_run("tick", at(0), "w1", at(0))
    later = at(0) + SCHEDULE_RUNS_KEPT + timedelta(seconds=1)
    assert store.claim_schedule_run("tick", later, "w1", later)  # prunes what is older than kept

    # a claim of a due time that old is no longer refused: nobody could still be making it
    assert store.claim_schedule_run("tick", at(0), "w2", later)
