"""Persistence: :func:`open_store` picks SQLite or PostgreSQL from the storage URL.

``sqlite:///path/to/file.db`` (relative to the current folder; ``?synchronous=FULL`` to survive
power loss) or ``postgresql+psycopg://user:password@host/db`` (``postgresql://`` and
``postgres://`` mean the same).
"""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from durafn.errors import BadRequestError
from durafn.store.base import (
    CONTROL_EVENT_TYPES,
    ActivityWorkItem,
    InstanceRecord,
    Message,
    NewActivity,
    NewInstance,
    NewMessage,
    NewSubOrchestration,
    OrchestrationWorkItem,
    StepCommit,
    Store,
    Work,
    WorkListener,
)

_EXAMPLES = "sqlite:///.durafn/durafn.db or postgresql+psycopg://user@host/dbname"
_POSTGRES_SCHEMES = frozenset({"postgresql", "postgres", "postgresql+psycopg"})


def open_store(url: str) -> Store:
    """Open the store at ``url``, creating its schema on first use.

    Raises BadRequestError for a URL that names no supported database, and StoreSchemaError for
    a database made by another version of durafn.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise BadRequestError(
            f"cannot parse the storage URL {url!r}; use for example {_EXAMPLES}"
        ) from None
    scheme = parsed.drivername
    if scheme in ("sqlite", "sqlite+pysqlite"):
        from durafn.store.sqlite import open_sqlite_store

        return open_sqlite_store(url, parsed)
    if scheme in _POSTGRES_SCHEMES:
        from durafn.store.postgres import open_postgres_store

        return open_postgres_store(url, parsed.set(drivername="postgresql+psycopg"))
    raise BadRequestError(
        f"unsupported storage URL scheme '{scheme}://'; durafn stores in SQLite or PostgreSQL "
        f"(through psycopg 3), e.g. {_EXAMPLES}"
    )


__all__ = [
    "CONTROL_EVENT_TYPES",
    "ActivityWorkItem",
    "InstanceRecord",
    "Message",
    "NewActivity",
    "NewInstance",
    "NewMessage",
    "NewSubOrchestration",
    "OrchestrationWorkItem",
    "StepCommit",
    "Store",
    "Work",
    "WorkListener",
    "open_store",
]
