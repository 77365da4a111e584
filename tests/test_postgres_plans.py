"""PostgreSQL: a step's guard finds its rows by primary key even without statistics.

A young database, or a server with autovacuum off, has no statistics on the store's tables; the
planner then took the status index (every row that ever had the status, dead ones included) for
the guard's instance, and the instance index for its activity. The guard's cost then grew with
every instance ever run.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from durafn.store import Store
from durafn.store.driver import Tx

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def indexes_used(plan: dict[str, Any]) -> set[str]:
    """Every index a plan node (or any node under it) scans."""
    used = {plan["Index Name"]} if "Index Name" in plan else set()
    for child in plan.get("Plans", []):
        used |= indexes_used(child)
    return used


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
