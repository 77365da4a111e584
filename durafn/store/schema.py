"""durafn's tables, on their own registry so they never mix with an application's SQLModel tables.

Every time column is :class:`UtcDateTime`: aware UTC datetimes in, aware UTC datetimes out, on
SQLite (which has no time zones) as on PostgreSQL (``timestamptz``).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back as an aware UTC datetime.

    On SQLite the value is stored as fixed-width text without an offset, so text order is time
    order; a naive datetime given to the store is taken to be UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC; drop the offset for SQLite, whose DATETIME text has none."""
        if value is None:
            return None
        value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach (SQLite) or normalize to (PostgreSQL) UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


# Autoincrement ids: BIGINT on PostgreSQL, but INTEGER on SQLite, where only "INTEGER PRIMARY KEY"
# is the rowid alias that autoincrements.
_Id = BigInteger().with_variant(Integer(), "sqlite")


class _Base(SQLModel, registry=registry()):
    """Base of durafn's tables: a private registry and metadata."""


class InstanceRow(_Base, table=True):
    """One orchestration instance; ``lease_owner``/``lease_until`` is the dispatcher's lease."""

    __tablename__ = "instances"
    __table_args__ = (
        # Keyset paging of queries, with and without a status filter.
        Index("ix_instances_created", "created_time", "instance_id"),
        Index("ix_instances_status_created", "status", "created_time", "instance_id"),
        # renew/release by owner; partial, so it holds only the few leased rows.
        Index(
            "ix_instances_lease_owner",
            "lease_owner",
            sqlite_where=Column("lease_owner").is_not(None),
            postgresql_where=Column("lease_owner").is_not(None),
        ),
    )

    instance_id: str = Field(sa_column=Column(String(256), primary_key=True))
    name: str = Field(sa_column=Column(Text, nullable=False))
    execution_id: str = Field(sa_column=Column(String(128), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    input: str | None = Field(default=None, sa_column=Column(Text))
    output: str | None = Field(default=None, sa_column=Column(Text))
    custom_status: str | None = Field(default=None, sa_column=Column(Text))
    created_time: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    last_updated_time: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    parent_instance_id: str | None = Field(default=None, sa_column=Column(String(256)))
    parent_task_id: int | None = Field(default=None, sa_column=Column(Integer))
    history_length: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    lease_owner: str | None = Field(default=None, sa_column=Column(String(256)))
    lease_until: datetime | None = Field(default=None, sa_column=Column(UtcDateTime))


class HistoryRow(_Base, table=True):
    """One event of an instance's current execution; ``seq`` counts from 0."""

    __tablename__ = "history"

    instance_id: str = Field(sa_column=Column(String(256), primary_key=True))
    seq: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    event_type: str = Field(sa_column=Column(String(64), nullable=False))
    event: str = Field(sa_column=Column(Text, nullable=False))


class InboxRow(_Base, table=True):
    """A message waiting for its instance; ``id`` is arrival order, ``visible_at`` makes timers."""

    __tablename__ = "inbox"
    __table_args__ = (
        Index("ix_inbox_instance", "instance_id", "id"),
        Index("ix_inbox_visible_at", "visible_at"),
        # AUTOINCREMENT: ids are never reused, so a consumed id always names the message it did.
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(
        default=None, sa_column=Column(_Id, primary_key=True, autoincrement=True)
    )
    instance_id: str = Field(sa_column=Column(String(256), nullable=False))
    execution_id: str | None = Field(default=None, sa_column=Column(String(128)))
    event_type: str = Field(sa_column=Column(String(64), nullable=False))
    event: str = Field(sa_column=Column(Text, nullable=False))
    visible_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class ActivityRow(_Base, table=True):
    """An activity work item; ``attempt`` counts the claims made so far."""

    __tablename__ = "activities"
    __table_args__ = (
        Index("ix_activities_instance", "instance_id"),
        Index(
            "ix_activities_lease_owner",
            "lease_owner",
            sqlite_where=Column("lease_owner").is_not(None),
            postgresql_where=Column("lease_owner").is_not(None),
        ),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(
        default=None, sa_column=Column(_Id, primary_key=True, autoincrement=True)
    )
    instance_id: str = Field(sa_column=Column(String(256), nullable=False))
    execution_id: str = Field(sa_column=Column(String(128), nullable=False))
    task_id: int = Field(sa_column=Column(Integer, nullable=False))
    name: str = Field(sa_column=Column(Text, nullable=False))
    input: str | None = Field(default=None, sa_column=Column(Text))
    lease_owner: str | None = Field(default=None, sa_column=Column(String(256)))
    lease_until: datetime | None = Field(default=None, sa_column=Column(UtcDateTime))
    attempt: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    created_time: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class ScheduleRunRow(_Base, table=True):
    """A run of a cron function, claimed by the host that makes it: one host per due time."""

    __tablename__ = "schedule_runs"

    name: str = Field(sa_column=Column(String(256), primary_key=True))
    due: datetime = Field(sa_column=Column(UtcDateTime, primary_key=True))
    host: str = Field(sa_column=Column(String(256), nullable=False))


class SchemaInfoRow(_Base, table=True):
    """The schema version of the database (one row)."""

    __tablename__ = "schema_info"

    id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    version: int = Field(sa_column=Column(Integer, nullable=False))


METADATA: MetaData = _Base.metadata
"""The metadata holding durafn's tables and nothing else."""

instances: Table = METADATA.tables["instances"]
schema_info: Table = METADATA.tables["schema_info"]
