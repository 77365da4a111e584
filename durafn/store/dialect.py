"""The Dialect protocol: what SQLite and PostgreSQL do differently, as SqlStore needs it.

``sqlite.py`` and ``postgres.py`` each implement it; everything else about the store is shared.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import URL, Connection, Engine

from durafn.errors import BadRequestError
from durafn.store.base import WorkListener
from durafn.store.driver import Driver, Tx

SYNCHRONOUS_MODES = ("NORMAL", "FULL")
"""The values of a store URL's ``?synchronous=`` (what each means: sqlite.py, postgres.py)."""
READ_ONLY = "durafn_read_only"
"""Execution option of SQLAlchemy connections that only read (SQLite: a deferred transaction)."""


def synchronous_mode(parsed: URL, default: str) -> str:
    """The store URL's ``?synchronous=`` mode, ``default`` when absent; BadRequestError unless
    it is one of SYNCHRONOUS_MODES.
    """
    mode = str(parsed.query.get("synchronous", default)).upper()
    if mode not in SYNCHRONOUS_MODES:
        other = next(m for m in SYNCHRONOUS_MODES if m != default)
        raise BadRequestError(
            f"synchronous={mode} is not supported; use synchronous={default} (the default) "
            f"or synchronous={other}"
        )
    return mode


class Dialect(Driver, Protocol):
    """What SQLite and PostgreSQL do differently, as SqlStore needs it."""

    claim_window: int
    """Candidates a claim considers per instance it wants: more where other hosts claim too."""
    skip_locked: str
    """Appended to a claim's candidate SELECT: lock the rows, skip those another host holds."""
    for_share: str
    """Appended to a SELECT of an instance: hold it against a concurrent step until commit."""
    inserted: str
    """An upsert's RETURNING expression: true when the row is new, not a replaced one (or
    always false where the database cannot tell)."""
    server_time: str | None
    """A SELECT of the database server's own clock, which hosts on several machines go by;
    None where every process sharing the store runs on one machine and one clock (SQLite)."""
    writes_in_with: bool
    """True where one statement's WITH may hold writes that read each other's rows (see
    Driver.refusing): a step on an activity's result then takes the activity in its guard, one
    statement fewer than a guard and a DELETE."""
    immediate: bool
    """True when a transaction never waits on I/O, only (rarely) on another writer's lock: its
    calls may then run on the caller's own thread (see Store.batch_now)."""
    lone_calls_inline: bool
    """True when a lone call may run on the caller's own thread all the same, its transaction
    failing at once where it would wait for another writer's lock (see Store.lone_calls_inline)."""

    def in_ids(self, column: str, param: str) -> str:
        """SQL testing that ``column`` is one of the ids bound to ``param`` (see :meth:`ids`)."""
        ...

    def ids(self, values: Sequence[Any]) -> Any:
        """Bind a list of ids for :meth:`in_ids`."""
        ...

    def ts(self, value: datetime) -> Any:
        """Bind an aware datetime to a time column."""
        ...

    def from_ts(self, value: Any) -> datetime:
        """Read a time column as an aware UTC datetime."""
        ...

    def lock_instances(self, tx: Tx, exclusive: list[str], shared: list[str]) -> None:
        """Lock instance rows until commit, all in id order, before a step writes.

        ``exclusive``: the rows the step updates; ``shared``: those it sends messages to (their
        status must not change to finished before the commit). One global order keeps steps that
        message each other's instances from deadlocking.
        """
        ...

    def lock_schema(self, conn: Connection) -> None:
        """Serialize schema creation among processes opening the same database at once."""
        ...

    def listen(self, engine: Engine) -> WorkListener | None:
        """Listen for what other store objects on ``engine``'s database announce (None: never)."""
        ...

    def acquire_host(self) -> bool:
        """Take the one-host lock where there is one; True when any lease left is a dead host's."""
        ...

    def close(self) -> None:
        """Release what acquire_host took."""
        ...
