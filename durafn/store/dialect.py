"""The Dialect protocol: what SQLite and PostgreSQL do differently, as SqlStore needs it.

``sqlite.py`` and ``postgres.py`` each implement it; everything else about the store is shared.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy import Connection, Engine, Select, Table
from sqlalchemy.exc import DBAPIError

from durafn.store.base import Work, WorkListener

if TYPE_CHECKING:
    from typing import TypeAlias

    from sqlalchemy.dialects.postgresql import Insert as PgInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

    Upsert: TypeAlias = PgInsert | SqliteInsert

SelectT = TypeVar("SelectT", bound="Select[Any]")

READ_ONLY = "durafn_read_only"
"""Execution option of connections that only read (SQLite then begins a deferred transaction)."""


class Dialect(Protocol):
    """What SQLite and PostgreSQL do differently, as SqlStore needs it."""

    claim_window: int
    """Candidates a claim considers per instance it wants: more where other hosts claim too."""

    def insert(self, table: Table) -> Upsert:
        """Return the dialect's INSERT construct, the one offering ON CONFLICT DO UPDATE."""
        ...

    def lock_for_claim(self, stmt: SelectT) -> SelectT:
        """Make a claim's candidate SELECT lock its rows and skip those another host is claiming."""
        ...

    def lock_shared(self, stmt: SelectT) -> SelectT:
        """Make a SELECT of instances hold them, until commit, against a concurrent step."""
        ...

    def lock_instances(self, conn: Connection, exclusive: list[str], shared: list[str]) -> None:
        """Lock instance rows until commit, all in id order, before a step writes.

        ``exclusive``: the rows the step updates; ``shared``: those it sends messages to (their
        status must not change to finished before the commit). One global order keeps steps that
        message each other's instances from deadlocking.
        """
        ...

    def is_retryable(self, error: DBAPIError) -> bool:
        """Tell whether the transaction failed only by a conflict (a deadlock) and may rerun."""
        ...

    def lock_schema(self, conn: Connection) -> None:
        """Serialize schema creation among processes opening the same database at once."""
        ...

    def announce(self, conn: Connection, work: Work) -> None:
        """Tell other hosts' listeners, when ``conn`` commits, that ``work`` was added."""
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
