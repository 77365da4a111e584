"""PostgreSQL: the store's statements find their rows by key even without statistics.

A young database, or a server with autovacuum off, has no statistics on the store's tables; the
planner then took the status index (every row that ever had the status, dead ones included) for
the guard's instance, and the instance index for its activity. The guard's cost then grew with
every instance ever run. Without statistics the planner also planned lists of ids as
sequential scans, which a prepared statement then kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from durafn.store import Store
from durafn.store.driver import Tx
from durafn.store.pgwire import numbered
from durafn.store.postgres import _LOCK_EXCLUSIVE

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A plan node and every node under it."""
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def indexes_used(plan: dict[str, Any]) -> set[str]:
    """Every index a plan node (or any node under it) scans."""
    return {node["Index Name"] for node in nodes(plan) if "Index Name" in node}


def node_types(plan: dict[str, Any]) -> set[str]:
    """Every node type in a plan."""
    return {node["Node Type"] for node in nodes(plan)}


def test_every_guard_finds_its_rows_by_primary_key_without_statistics(pg_store: Store) -> None:
    for n in range(300):
        pg_store.create_instance(f"i{n}", "orch", None, f"e{n}", T0)
    statements = pg_store._sql  # type: ignore[attr-defined]  # the statements under test
    connections = pg_store._connections  # type: ignore[attr-defined]
    params = {
        "iid": "i7",
        "worker": "w1",
        "eid": "e7",
        "base": 1,
        "activity": 1,
        "status": "Running",
        "output": None,
        "custom_status": None,
        "now": T0,
        "count": 2,
        "new_eid": "e7b",
        "new_input": None,
    }

    def explain(tx: Tx, guard: str) -> set[str]:
        [(plan,)] = tx.rows("EXPLAIN (FORMAT JSON) " + guard, params)  # json, loaded
        return indexes_used(plan[0]["Plan"])

    for key, guard in statements.guards.items():
        used = connections.transaction(lambda tx, guard=guard: explain(tx, guard))
        assert used <= {"instances_pkey", "activities_pkey", "ix_inbox_instance"}, key
        assert "instances_pkey" in used, key


def test_statements_on_lists_of_ids_keep_to_indexes_when_planned_on_empty_tables(
    pg_store: Store,
) -> None:
    # A prepared statement keeps its generic plan until the table is analyzed: planned on the
    # empty tables of a new store, a sequential scan would be kept while the tables grow.
    statements = pg_store._sql  # type: ignore[attr-defined]  # the statements under test
    connections = pg_store._connections  # type: ignore[attr-defined]
    on_lists = {
        "delete history": statements.delete_owned[0],
        "delete inbox": statements.delete_owned[1],
        "delete activities": statements.delete_owned[2],
        "statuses": statements.statuses,
        "alive": statements.alive,
        "purge": statements.purge_many,
        "unlease": statements.unlease,
        "messages": statements.messages,
        "delete messages": statements.delete_messages,
        "lock": _LOCK_EXCLUSIVE,
    }
    literals = {"ids": "'{1}'", "now": "now()"}

    def generic_plan(tx: Tx, sql: str) -> dict[str, Any]:
        text, names = numbered(sql)
        tx.run("SET LOCAL plan_cache_mode = force_generic_plan")
        tx.run(f"PREPARE durafn_plan_under_test AS {text}")
        args = ", ".join(literals[name] for name in names or ())
        [(plan,)] = tx.rows(f"EXPLAIN (FORMAT JSON) EXECUTE durafn_plan_under_test({args})")
        tx.run("DEALLOCATE durafn_plan_under_test")
        found: dict[str, Any] = plan[0]["Plan"]
        return found

    for what, sql in on_lists.items():
        plan = connections.transaction(lambda tx, sql=sql: generic_plan(tx, sql))
        assert "Seq Scan" not in node_types(plan), (what, plan)
        assert indexes_used(plan), (what, plan)
