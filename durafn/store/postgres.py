"""PostgreSQL (psycopg 3): several hosts share one database; claims use FOR UPDATE SKIP LOCKED.

A host that dies keeps its leases until they expire, then other hosts take its work over; there
is no host lock, so ``attach_host`` frees nothing. Hosts hear of each other's work through
LISTEN/NOTIFY (``pgnotify.py``).
"""

from __future__ import annotations

import itertools

from sqlalchemy import URL, Connection, Engine, Table, create_engine, func, select
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.exc import DBAPIError

from durafn.store.base import Work
from durafn.store.dialect import SelectT
from durafn.store.pgnotify import Announcer, PostgresListener
from durafn.store.queries import IDS
from durafn.store.schema import instances
from durafn.store.sql import SqlStore

POOL_SIZE = 10
MAX_OVERFLOW = 20
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
"""deadlock_detected, serialization_failure: the transaction lost a conflict and may rerun."""
_SCHEMA_LOCK_KEY = 0x64757261666E  # "durafn": the advisory lock taken while creating the schema
# PostgreSQL locks rows as they leave the sort, so in id order; COLLATE "C" makes that order
# the one Python's sorted() gives, which lock_instances relies on across its statements.
_IN_ORDER = (
    select(instances.c.instance_id)
    .where(instances.c.instance_id.in_(IDS))
    .order_by(instances.c.instance_id.collate("C"))
)
_LOCK_EXCLUSIVE = _IN_ORDER.with_for_update(key_share=True)  # FOR NO KEY UPDATE
_LOCK_SHARED = _IN_ORDER.with_for_update(read=True)  # FOR SHARE


def open_postgres_store(url: str, parsed: URL) -> SqlStore:
    """Open the PostgreSQL store at ``parsed`` (a ``postgresql+psycopg`` URL)."""
    # pre_ping: a connection the server or a proxy closed while pooled is replaced, not failed.
    engine = create_engine(
        parsed, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW
    )
    return SqlStore(url, engine, PostgresDialect())


class PostgresDialect:
    """SqlStore's PostgreSQL specifics: row locks instead of one writer at a time."""

    claim_window = 4  # other hosts may hold the first candidates; look a little further

    def __init__(self) -> None:
        self._announcer = Announcer()

    def insert(self, table: Table) -> Insert:
        """PostgreSQL's INSERT, with ON CONFLICT DO UPDATE."""
        return insert(table)

    def lock_for_claim(self, stmt: SelectT) -> SelectT:
        """Lock the candidate rows, skipping those another host's claim holds."""
        return stmt.with_for_update(skip_locked=True)

    def lock_shared(self, stmt: SelectT) -> SelectT:
        """FOR SHARE: a concurrent step that would finish the instance waits for this commit."""
        return stmt.with_for_update(read=True)

    def lock_instances(self, conn: Connection, exclusive: list[str], shared: list[str]) -> None:
        """Lock in id order, one statement per run of ids that take the same lock mode."""
        modes = sorted([(i, True) for i in exclusive] + [(i, False) for i in shared])
        for is_exclusive, run in itertools.groupby(modes, key=lambda mode: mode[1]):
            lock = _LOCK_EXCLUSIVE if is_exclusive else _LOCK_SHARED
            conn.execute(lock, {"b_ids": [instance_id for instance_id, _ in run]})

    def is_retryable(self, error: DBAPIError) -> bool:
        """Deadlocks and serialization failures (two steps messaging each other's instances)."""
        return getattr(error.orig, "sqlstate", None) in RETRYABLE_SQLSTATES

    def lock_schema(self, conn: Connection) -> None:
        """Hold a transaction-scoped advisory lock while the schema is checked or created."""
        conn.execute(select(func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))

    def announce(self, conn: Connection, work: Work) -> None:
        """NOTIFY the other hosts' listeners of ``work`` when ``conn`` commits."""
        self._announcer.announce(conn, work)

    def listen(self, engine: Engine) -> PostgresListener:
        """LISTEN on a new connection to ``engine``'s database."""
        return self._announcer.listen(engine)

    def acquire_host(self) -> bool:
        """Nothing to take: hosts share the database, and dead hosts' leases expire on their own."""
        return False

    def close(self) -> None:
        """Nothing to release."""
