"""PostgreSQL (psycopg 3): several hosts share one database; claims use FOR UPDATE SKIP LOCKED.

A host that dies keeps its leases until they expire, then other hosts take its work over; there
is no host lock, so ``attach_host`` frees nothing. Hosts hear of each other's work through
LISTEN/NOTIFY (``pgnotify.py``).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy import URL, Connection, Engine, create_engine, func, select

from durafn.store.base import Work
from durafn.store.dialect import synchronous_mode
from durafn.store.driver import Cursor, Tx, named_to_pyformat
from durafn.store.pgnotify import Announcer, PostgresListener, connect_args
from durafn.store.pgwire import WireConnection
from durafn.store.sql import SqlStore

POOL_SIZE = 5
MAX_OVERFLOW = 10
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
"""deadlock_detected, serialization_failure: the transaction lost a conflict and may rerun."""
DIVISION_BY_ZERO = "22012"
"""The SQLSTATE a statement of PostgresDialect.refusing fails with when it refuses."""
INLINE_LOCK_TIMEOUT_MS = 1
"""How long a call run on the event loop waits for another transaction's row lock before it
gives up and goes to the store thread: the loop stalls meanwhile, so the least PostgreSQL takes."""
_SCHEMA_LOCK_KEY = 0x64757261666E  # "durafn": the advisory lock taken while creating the schema
# PostgreSQL locks rows as they leave the sort, so in id order; COLLATE "C" makes that order
# the one Python's sorted() gives, which lock_instances relies on across its statements.
_IN_ORDER = (
    "SELECT instance_id FROM instances WHERE instance_id = ANY(%(ids)s) "
    'ORDER BY instance_id COLLATE "C" '
)
_LOCK_EXCLUSIVE = _IN_ORDER + "FOR NO KEY UPDATE"
_LOCK_SHARED = _IN_ORDER + "FOR SHARE"


def open_postgres_store(url: str, parsed: URL) -> SqlStore:
    """Open the PostgreSQL store at ``parsed`` (a ``postgresql+psycopg`` URL).

    ``?synchronous=NORMAL`` commits without waiting for the server to flush its WAL
    (``synchronous_commit=off``): a killed host still loses nothing, a crash of the database
    server may lose its last fraction of a second of commits, never corrupting anything.
    ``FULL`` (the default) keeps the server's own setting, normally a flush per commit.
    """
    synchronous = synchronous_mode(parsed, "FULL")
    parsed = parsed.difference_update_query(["synchronous"])
    # Every statement is prepared, and PostgreSQL keeps a prepared statement's generic plan
    # until the table is next analyzed. Planned while the tables were young (or where
    # autovacuum is off or behind), that plan is a sequential scan, and then each start or
    # step reads every row ever stored. All the store's statements find their rows by key;
    # sequential scans are left for what no index serves.
    settings = " -c enable_seqscan=off"
    if synchronous == "NORMAL":
        settings += " -c synchronous_commit=off"
    # A key given twice in a URL's query comes as a tuple: each of its options counts.
    given = parsed.query.get("options", ())
    options = " ".join((given,) if isinstance(given, str) else given)
    parsed = parsed.update_query_dict({"options": f"{options}{settings}".strip()})
    # The engine serves schema creation and instance queries; pre_ping: a connection the
    # server or a proxy closed while pooled is replaced, not failed.
    engine = create_engine(
        parsed, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW
    )
    return SqlStore(url, engine, PostgresDialect(engine))


class PostgresDialect:
    """SqlStore's PostgreSQL specifics: row locks instead of one writer at a time."""

    claim_window = 4  # other hosts may hold the first candidates; look a little further
    skip_locked = " FOR UPDATE SKIP LOCKED"
    for_share = " FOR SHARE"
    inserted = "(xmax = 0)"  # a row that was never updated
    immediate = False  # every statement waits on the server
    lone_calls_inline = True
    writes_in_with = True
    # clock_timestamp(): the time now, where now() is the transaction's start
    server_time: str | None = "SELECT clock_timestamp()"

    def __init__(self, engine: Engine) -> None:
        self._announcer = Announcer()
        self._connect_args = connect_args(engine)

    def connect(self, wait: bool = True) -> WireConnection:
        """A connection of the store's own: a lone SELECT is one round trip, and a write spells
        its BEGIN. ``wait`` False: one whose statements fail (SQLSTATE 55P03) where they would
        wait for a row lock another transaction holds, for calls run on the event loop.
        """
        args, kwargs = self._connect_args
        conn = psycopg.connect(*args, **{**kwargs, "autocommit": True})
        # Where a commit waits for its WAL flush, sending statements as they are made lets the
        # server run them meanwhile. Where it does not (synchronous_commit=off), the extra
        # wake-ups of the server cost more than that saves (bench: latency a third worse).
        try:
            if not wait:
                conn.execute(f"SET lock_timeout = '{INLINE_LOCK_TIMEOUT_MS}ms'")
            setting = conn.execute("SHOW synchronous_commit").fetchone()
        except BaseException:
            conn.close()
            raise
        return WireConnection(conn, send_early=setting is None or setting[0] != "off")

    def prepare(self, sql: str) -> str:
        """``:name`` to psycopg's ``%(name)s``."""
        return named_to_pyformat(sql)

    @contextlib.contextmanager
    def pipeline(self, conn: WireConnection) -> Iterator[Callable[[], None]]:
        """In libpq's pipeline mode a transaction's statements, its COMMIT included, go out
        together: a write waits for the server once, or again for each reply read before it
        commits, not once per statement.
        """
        with conn.pipeline() as wait:
            yield wait

    def refusing(self, sql: str, then: str | None = None) -> str:
        """``sql``'s rows, failed with a division by zero when there are none: plain SQL has no
        RAISE (PL/pgSQL has), and this needs no function created in the database. The count's
        one row is always there to join, so the division runs even when ``sql`` returns none.
        A write in a WITH must be at the statement's top, so ``then`` goes beside ``sql``, and
        its rows, which ``then`` returns only when ``sql`` admitted it, are the ones counted.
        """
        behind, counted = ("", "admitted") if then is None else (f", taken AS ({then})", "taken")
        return (
            f"WITH admitted AS ({sql}){behind} SELECT admitted.*, 1 / rows.count FROM "
            f"(SELECT count(*) AS count FROM {counted}) AS rows LEFT JOIN admitted ON true"
        )

    def is_refusal(self, error: Exception) -> bool:
        """A division by zero: only statements of :meth:`refusing` divide."""
        return getattr(error, "sqlstate", None) == DIVISION_BY_ZERO

    def resume(self, conn: WireConnection) -> None:
        """Sync the pipeline past the failure (see Driver.resume)."""
        conn.resync()

    def begin(self, cursor: Cursor, write: bool) -> None:
        """BEGIN for writers; a reader's one statement is its own transaction."""
        if write:
            cursor.execute("BEGIN")

    def finish(self, conn: WireConnection, cursor: Cursor, work: Work, write: bool) -> None:
        """NOTIFY the other hosts of ``work`` in the transaction, then commit."""
        if write:
            self._announcer.announce(cursor, work)
            cursor.execute("COMMIT")

    def abort(self, conn: WireConnection) -> None:
        """Roll back (a broken connection has nothing to roll back)."""
        if not conn.closed and conn.transaction_status != TransactionStatus.IDLE:
            conn.rollback()

    def is_retryable(self, error: Exception) -> bool:
        """Deadlocks and serialization failures (two steps messaging each other's instances)."""
        return getattr(error, "sqlstate", None) in RETRYABLE_SQLSTATES

    def is_disconnect(self, error: Exception, conn: WireConnection) -> bool:
        """The server went away (restarted, or a proxy dropped the connection)."""
        return isinstance(error, psycopg.OperationalError) and conn.closed

    def in_ids(self, column: str, param: str) -> str:
        """An array parameter."""
        return f"{column} = ANY(:{param})"

    def ids(self, values: Sequence[Any]) -> list[Any]:
        """The ids as a list (psycopg binds it as an array)."""
        return list(values)

    def ts(self, value: datetime) -> datetime:
        """As is: psycopg binds aware datetimes to timestamptz (naive ones are taken as UTC)."""
        return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)

    def from_ts(self, value: datetime) -> datetime:
        """In UTC (psycopg returns the session's time zone)."""
        return value.astimezone(timezone.utc)

    def lock_instances(self, tx: Tx, exclusive: list[str], shared: list[str]) -> None:
        """Lock in id order, one statement per run of ids that take the same lock mode."""
        modes = sorted([(i, True) for i in exclusive] + [(i, False) for i in shared])
        for is_exclusive, run in itertools.groupby(modes, key=lambda mode: mode[1]):
            lock = _LOCK_EXCLUSIVE if is_exclusive else _LOCK_SHARED
            tx.run(lock, {"ids": [instance_id for instance_id, _ in run]})

    def lock_schema(self, conn: Connection) -> None:
        """Hold a transaction-scoped advisory lock while the schema is checked or created."""
        conn.execute(select(func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))

    def listen(self, engine: Engine) -> PostgresListener:
        """LISTEN on a new connection to ``engine``'s database."""
        return self._announcer.listen(engine)

    def acquire_host(self) -> bool:
        """Nothing to take: hosts share the database, and dead hosts' leases expire on their own."""
        return False

    def close(self) -> None:
        """Nothing to release."""
