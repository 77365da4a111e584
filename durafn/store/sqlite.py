"""SQLite: one database file, WAL, writers serialized by BEGIN IMMEDIATE, one host per file.

Durability: ``synchronous=NORMAL`` (the default) in WAL mode survives a killed process with
nothing lost; a power loss or OS crash may lose the last few commits (never corrupt the file).
``sqlite:///path?synchronous=FULL`` syncs every commit to disk, which is slower per step but
also survives power loss.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event

from durafn.errors import BadRequestError, StoreLockedError
from durafn.store.base import Work
from durafn.store.dialect import READ_ONLY, synchronous_mode
from durafn.store.driver import Cursor, Tx
from durafn.store.sql import SqlStore

if sys.platform == "win32":
    import msvcrt
else:
    import fcntl

log = logging.getLogger("durafn.store")

CHECKPOINT_SECONDS = 0.25
"""How often the store's checkpointer copies the WAL into the database file."""
BUSY_TIMEOUT_MS = 30_000
"""How long a writer waits for another (another thread or a client process) before failing."""


def open_sqlite_store(url: str, parsed: URL) -> SqlStore:
    """Open (creating the file and its folder) the SQLite store at ``parsed``."""
    path, synchronous = _options(parsed)
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqlStore(url, _create_engine(path, synchronous), SqliteDialect(path, synchronous))


def _options(parsed: URL) -> tuple[Path, str]:
    """Read the database path (relative to the current folder) and synchronous mode."""
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        raise BadRequestError(
            "an in-memory SQLite store cannot be shared by durafn's workers and clients; give a "
            "file, e.g. sqlite:///.durafn/durafn.db"
        )
    unknown = sorted(set(parsed.query) - {"synchronous"})
    if unknown:
        raise BadRequestError(
            f"unknown SQLite storage option(s) {', '.join(unknown)}; the only one is "
            "synchronous=NORMAL|FULL"
        )
    return Path(database).absolute(), synchronous_mode(parsed, "NORMAL")


def _configure(dbapi_connection: sqlite3.Connection, synchronous: str) -> None:
    """Autocommit mode (the store spells its own BEGINs), a busy timeout, WAL, ``synchronous``."""
    dbapi_connection.isolation_level = None
    dbapi_connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    dbapi_connection.execute("PRAGMA journal_mode = WAL")
    dbapi_connection.execute(f"PRAGMA synchronous = {synchronous}")


def _create_engine(path: Path, synchronous: str) -> Engine:
    # The engine serves schema creation and instance queries; check_same_thread off because
    # client threads share it, each pooled connection used by one thread at a time.
    engine = create_engine(
        URL.create("sqlite+pysqlite", database=str(path)),
        connect_args={"check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        _configure(dbapi_connection, synchronous)

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # A writer takes the write lock up front: a deferred transaction that reads and then
        # writes fails with "database is locked" when another writer got there in between.
        # Readers keep a deferred BEGIN, so WAL lets them run beside the writer.
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


class SqliteDialect:
    """SqlStore's SQLite specifics: no row locks (BEGIN IMMEDIATE serializes), a host file lock.

    Times are stored as SQLAlchemy's SQLite DATETIME stores them: fixed-width UTC text, so text
    order is time order.
    """

    claim_window = 1  # claims are serialized, so the first candidates are always free
    skip_locked = ""  # a claim runs in a BEGIN IMMEDIATE transaction, alone among writers
    for_share = ""  # BEGIN IMMEDIATE already keeps other writers out until commit
    inserted = "0"  # cannot tell; deleting what a replaced instance left costs little here
    # one file on one machine: its host and its clients all read the machine's clock
    server_time: str | None = None
    writes_in_with = False  # SQLite's WITH holds SELECTs only
    # with FULL, an fsync of the caller's thread; not measured against the thread's hop
    lone_calls_inline = False

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        self._path = path
        self._synchronous = synchronous
        # with NORMAL a commit only writes to the WAL, which the OS caches; with FULL each
        # commit waits for an fsync
        self.immediate = synchronous == "NORMAL"
        self._lock_path = path.with_name(path.name + ".lock")
        self._lock_fd: int | None = None
        self._checkpointer: Checkpointer | None = None

    def connect(self, wait: bool = True) -> sqlite3.Connection:
        """A connection of the store's own, configured like the engine's, that leaves
        checkpoints to the store's checkpointer thread; ``wait`` False: with no busy timeout,
        so BEGIN IMMEDIATE fails at once while another writer holds the lock.
        """
        conn = sqlite3.connect(self._path, check_same_thread=False)
        _configure(conn, self._synchronous)
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        if not wait:
            conn.execute("PRAGMA busy_timeout = 0")
        if self._checkpointer is None:
            self._checkpointer = Checkpointer(self._path, self._synchronous)
        return conn

    def prepare(self, sql: str) -> str:
        """As is: sqlite3 takes ``:name`` parameters."""
        return sql

    def refusing(self, sql: str, then: str | None = None) -> str:
        """As is: a reply is read before the next statement goes out, so a refused write sends
        nothing. ``then`` cannot be: SQLite has no writes in WITH (see ``writes_in_with``).
        """
        if then is not None:
            raise ValueError("SQLite has no DELETE in WITH: take the row in a statement of its own")
        return sql

    def is_refusal(self, error: Exception) -> bool:
        """Never: refusals are read, not raised (see :meth:`refusing`)."""
        return False

    def resume(self, conn: sqlite3.Connection) -> None:
        """Nothing to do: each statement runs as it is sent (see Driver.resume)."""

    def begin(self, cursor: Cursor, write: bool) -> None:
        """BEGIN IMMEDIATE for writers (see _create_engine); readers run one statement each."""
        if write:
            cursor.execute("BEGIN IMMEDIATE")

    def pipeline(self, conn: sqlite3.Connection) -> contextlib.nullcontext[None]:
        """None: an in-process database replies at once, there is nothing to send ahead."""
        return contextlib.nullcontext()

    def finish(self, conn: sqlite3.Connection, cursor: Cursor, work: Work, write: bool) -> None:
        """Commit; nothing to announce: the one host on the file learns of its work in-process."""
        if conn.in_transaction:
            conn.execute("COMMIT")

    def abort(self, conn: sqlite3.Connection) -> None:
        """Roll back the transaction in progress, if any."""
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    def is_retryable(self, error: Exception) -> bool:
        """Never: with writers serialized there are no deadlocks to retry."""
        return False

    def is_disconnect(self, error: Exception, conn: sqlite3.Connection) -> bool:
        """Never: a file does not hang up."""
        return False

    def in_ids(self, column: str, param: str) -> str:
        """A JSON array parameter: one statement for any number of ids, no parameter limit."""
        return f"{column} IN (SELECT value FROM json_each(:{param}))"

    def ids(self, values: Sequence[Any]) -> str:
        """The ids as a JSON array."""
        return json.dumps(list(values))

    def ts(self, value: datetime) -> str:
        """Fixed-width UTC text (a naive datetime is taken to be UTC)."""
        if value.utcoffset():
            value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None).isoformat(" ", "microseconds")

    def from_ts(self, value: str) -> datetime:
        """Parse the stored text as UTC."""
        return datetime.fromisoformat(value).replace(tzinfo=timezone.utc)

    def lock_instances(self, tx: Tx, exclusive: list[str], shared: list[str]) -> None:
        """Nothing to do: the BEGIN IMMEDIATE transaction already excludes other writers."""

    def lock_schema(self, conn: Connection) -> None:
        """Nothing to do: BEGIN IMMEDIATE serializes schema creation."""

    def listen(self, engine: Engine) -> None:
        """Nothing to listen to: no other host serves this file."""
        return None

    def acquire_host(self) -> bool:
        """Take the exclusive lock on ``<db>.lock``; StoreLockedError when another host holds it."""
        if self._lock_fd is not None:
            return False
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            raise StoreLockedError(
                f"another durafn host is already serving {self._path}; stop it or use "
                "another --storage"
            )
        self._lock_fd = fd
        return True

    def close(self) -> None:
        """Stop the checkpointer; release the host lock (closing the file drops it)."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


class Checkpointer:
    """Copies the WAL into the database file on a thread of its own, every CHECKPOINT_SECONDS.

    SQLite would otherwise checkpoint inside every thousandth commit, on the committing thread:
    measured here, that was half the cost of a step's commit. A passive checkpoint never blocks
    the writer, and what it moves is already durable in the WAL, so nothing about durability
    changes.
    """

    def __init__(self, path: Path, synchronous: str) -> None:
        self._path = path
        self._conn = sqlite3.connect(path, check_same_thread=False)
        _configure(self._conn, synchronous)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="durafn-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stopping.wait(CHECKPOINT_SECONDS):
                try:
                    self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as error:  # the next round tries again
                    log.warning("checkpointing %s failed: %s", self._path, error)
        finally:
            self._conn.close()

    def stop(self) -> None:
        """Stop the thread (SQLite checkpoints what is left when the last connection closes)."""
        self._stopping.set()
        self._thread.join()


def _try_lock(fd: int) -> bool:
    """Lock ``fd`` exclusively without waiting; False when someone else holds it."""
    try:
        if sys.platform == "win32":
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True
