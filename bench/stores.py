"""A fresh, empty store for each shape, so no shape pays for the rows an earlier one left.

Without ``--storage`` durafn gets a SQLite file per shape (a SQLite ``--storage`` is used as
given), and DBOS a SQLite file of its own. With a PostgreSQL ``--storage``, durafn gets the schema
``durafn_bench`` in that database and DBOS the database ``dbos_bench_sys`` on the same server,
each created for the shape and dropped after it, which also leaves the named database as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from bench.measure import BenchError
from durafn.errors import DurafnError
from durafn.store import open_store
from durafn.store.dialect import synchronous_mode

if TYPE_CHECKING:
    import psycopg

DURAFN_SCHEMA = "durafn_bench"
DBOS_DATABASE = "dbos_bench_sys"


class StorageError(BenchError):
    """The ``--storage`` given cannot be used: a bad URL, a server out of reach, no driver."""

    def __init__(self, storage: str | None, problem: object) -> None:
        super().__init__(f"--storage {_shown(storage) if storage else storage}: {problem}")


def _shown(storage: str) -> str:
    """``storage`` as printed: without its password (as given, where it does not parse)."""
    try:
        return make_url(storage).render_as_string(hide_password=True)
    except ArgumentError:
        return storage


def check_storage(storage: str | None, folder: Path) -> None:
    """Open durafn's store on ``storage`` once, so that a URL which cannot work fails before
    any shape runs, not after minutes of them.
    """
    try:
        with durafn_store(storage, folder / "check.db") as url:
            open_store(url).close()
    except (DurafnError, SQLAlchemyError) as exc:
        raise StorageError(storage, exc) from exc


def is_postgres(storage: str | None) -> bool:
    """Whether a durafn store URL names a PostgreSQL server."""
    return storage is not None and storage.startswith(("postgresql", "postgres:"))


def describe_durafn(storage: str | None) -> str:
    """Where durafn's stores are, for the header (without the password)."""
    if storage is None:
        return "SQLite, WAL, synchronous=NORMAL, a fresh file per shape"
    shown = _shown(storage)
    return f"{shown}, schema {DURAFN_SCHEMA} fresh per shape" if is_postgres(storage) else shown


def describe_dbos(storage: str | None) -> str:
    """Where DBOS's system databases are, for the header."""
    if is_postgres(storage):
        assert storage is not None
        synchronous = synchronous_mode(make_url(storage), "FULL")
        commit = "off" if synchronous == "NORMAL" else "the server's own"
        return (
            f"PostgreSQL, database {DBOS_DATABASE} on the same server, fresh per shape, "
            f"synchronous_commit {commit} (as durafn's synchronous={synchronous})"
        )
    return "SQLite, WAL, synchronous=NORMAL as durafn's, a fresh file per shape"


@contextlib.contextmanager
def autocommit_connection(storage: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An autocommit connection to ``storage``'s database with its options (CREATE/DROP
    DATABASE need one, and the commit floor takes one commit per statement)."""
    try:  # imported here: psycopg is only installed with the postgres extra
        import psycopg
    except ImportError:
        hint = 'PostgreSQL needs psycopg 3: pip install -e ".[postgres]"'
        raise StorageError(storage, hint) from None
    # psycopg wants postgresql:// and knows nothing of durafn's own ?synchronous=
    plain = make_url(storage).set(drivername="postgresql").difference_update_query(["synchronous"])
    try:
        admin = psycopg.connect(plain.render_as_string(hide_password=False), autocommit=True)
    except psycopg.OperationalError as exc:
        raise StorageError(storage, exc) from exc
    with admin:
        yield admin


@contextlib.contextmanager
def _fresh(storage: str, kind: str, name: str, drop_option: str) -> Iterator[None]:
    """A ``kind`` (SCHEMA, DATABASE) ``name`` created empty on ``storage``'s server and dropped
    afterwards."""
    drop = f"DROP {kind} IF EXISTS {name} {drop_option}"
    with autocommit_connection(storage) as admin:
        admin.execute(drop)
        admin.execute(f"CREATE {kind} {name}")
        try:
            yield
        finally:
            admin.execute(drop)


@contextlib.contextmanager
def durafn_store(storage: str | None, sqlite_file: Path) -> Iterator[str]:
    """The store URL durafn runs one shape on."""
    if not is_postgres(storage):
        yield storage or f"sqlite:///{sqlite_file}"
        return
    assert storage is not None
    # the same database, seen through a schema of its own (as the test suite's stores are)
    url = make_url(storage).update_query_dict(
        {"options": f"-csearch_path={DURAFN_SCHEMA}"}, append=True
    )
    with _fresh(storage, "SCHEMA", DURAFN_SCHEMA, "CASCADE"):
        yield url.render_as_string(hide_password=False)


@contextlib.contextmanager
def dbos_system_database(storage: str | None, sqlite_file: Path) -> Iterator[str]:
    """The system database URL DBOS runs one shape on."""
    if not is_postgres(storage):
        yield f"sqlite:///{sqlite_file}"
        return
    assert storage is not None
    # DBOS wants a plain postgresql:// URL (no durafn ?synchronous=), and keeps its tables in a
    # database of its own; durafn's synchronous=NORMAL is given to it as the server setting
    parsed = make_url(storage)
    url = parsed.set(drivername="postgresql", database=DBOS_DATABASE)
    url = url.difference_update_query(["synchronous"])
    if synchronous_mode(parsed, "FULL") == "NORMAL":
        url = url.update_query_dict({"options": "-c synchronous_commit=off"})
    with _fresh(storage, "DATABASE", DBOS_DATABASE, "WITH (FORCE)"):
        yield url.render_as_string(hide_password=False)
