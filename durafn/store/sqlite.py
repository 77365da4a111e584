"""SQLite: one database file, WAL, writers serialized by BEGIN IMMEDIATE, one host per file.

Durability: ``synchronous=NORMAL`` (the default) in WAL mode survives a killed process with
nothing lost; a power loss or OS crash may lose the last few commits (never corrupt the file).
``sqlite:///path?synchronous=FULL`` syncs every commit to disk, which is slower per step but
also survives power loss.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects.sqlite import Insert, insert
from sqlalchemy.exc import DBAPIError

from durafn.errors import BadRequestError, StoreLockedError
from durafn.store.base import Work
from durafn.store.dialect import READ_ONLY, SelectT
from durafn.store.sql import SqlStore

if sys.platform == "win32":
    import msvcrt
else:
    import fcntl

SYNCHRONOUS_MODES = ("NORMAL", "FULL")
BUSY_TIMEOUT_MS = 30_000
"""How long a writer waits for another (another thread or a client process) before failing."""


def open_sqlite_store(url: str, parsed: URL) -> SqlStore:
    """Open (creating the file and its folder) the SQLite store at ``parsed``."""
    path, synchronous = _options(parsed)
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqlStore(url, _create_engine(path, synchronous), SqliteDialect(path))


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
    synchronous = str(parsed.query.get("synchronous", "NORMAL")).upper()
    if synchronous not in SYNCHRONOUS_MODES:
        raise BadRequestError(
            f"synchronous={synchronous} is not supported; use synchronous=NORMAL (the default) "
            "or synchronous=FULL"
        )
    return Path(database).absolute(), synchronous


def _create_engine(path: Path, synchronous: str) -> Engine:
    # QueuePool with check_same_thread off: the runtime's store thread and client threads share
    # the engine, each connection used by one thread at a time.
    engine = create_engine(
        URL.create("sqlite+pysqlite", database=str(path)),
        connect_args={"check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 module so that _begin below decides how it is spelled.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute(f"PRAGMA synchronous = {synchronous}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # A writer takes the write lock up front: a deferred transaction that reads and then
        # writes fails with "database is locked" when another writer got there in between.
        # Readers keep a deferred BEGIN, so WAL lets them run beside the writer.
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


class SqliteDialect:
    """SqlStore's SQLite specifics: no row locks (BEGIN IMMEDIATE serializes), a host file lock."""

    claim_window = 1  # claims are serialized, so the first candidates are always free

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._lock_fd: int | None = None

    def insert(self, table: Table) -> Insert:
        """SQLite's INSERT, with ON CONFLICT DO UPDATE."""
        return insert(table)

    def lock_for_claim(self, stmt: SelectT) -> SelectT:
        """As is: a claim runs in a BEGIN IMMEDIATE transaction, alone among writers."""
        return stmt

    def lock_shared(self, stmt: SelectT) -> SelectT:
        """As is: BEGIN IMMEDIATE already keeps other writers out until commit."""
        return stmt

    def lock_instances(self, conn: Connection, exclusive: list[str], shared: list[str]) -> None:
        """Nothing to do: the BEGIN IMMEDIATE transaction already excludes other writers."""

    def is_retryable(self, error: DBAPIError) -> bool:
        """Never: with writers serialized there are no deadlocks to retry."""
        return False

    def lock_schema(self, conn: Connection) -> None:
        """Nothing to do: BEGIN IMMEDIATE serializes schema creation."""

    def announce(self, conn: Connection, work: Work) -> None:
        """Nothing to do: the one host on the file learns of its own work in-process."""

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
        """Release the host lock (closing the file drops it)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


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
