"""Create durafn's schema on first use, upgrade an older one, refuse one newer than this code."""

from __future__ import annotations

from sqlalchemy import Engine, func, inspect, select, update

from durafn.errors import StoreSchemaError
from durafn.store.dialect import Dialect
from durafn.store.schema import METADATA, schema_info

SCHEMA_VERSION = 2
"""The schema version this code writes and understands."""
UPGRADABLE_FROM = 1
"""The oldest version this code upgrades: each later version only added tables."""


def ensure_schema(engine: Engine, dialect: Dialect, where: str) -> None:
    """Create the tables and record SCHEMA_VERSION in an empty database; upgrade an older
    schema by adding the tables it lacks (version 2: schedule_runs).

    ``where`` names the database in errors. Raises StoreSchemaError for a newer version, or
    one too old to upgrade.
    """
    with engine.begin() as conn:
        # Several hosts may open a new database at once: one creates, the others then see it.
        dialect.lock_schema(conn)
        version = None
        if inspect(conn).has_table(schema_info.name):
            version = conn.scalar(select(func.max(schema_info.c.version)))
        if version is None:
            METADATA.create_all(conn)
            conn.execute(schema_info.insert().values(id=1, version=SCHEMA_VERSION))
        elif version > SCHEMA_VERSION:
            raise StoreSchemaError(
                f"the durafn database at {where} has schema version {version}, made by a newer "
                f"durafn than this one (which knows version {SCHEMA_VERSION}); upgrade durafn "
                "(pip install --upgrade durafn) on every host that uses this database"
            )
        elif UPGRADABLE_FROM <= version < SCHEMA_VERSION:
            METADATA.create_all(conn)  # only the missing tables
            conn.execute(update(schema_info).values(version=SCHEMA_VERSION))
        elif version < SCHEMA_VERSION:
            raise StoreSchemaError(
                f"the durafn database at {where} has schema version {version}, older than any "
                f"this durafn can use (version {SCHEMA_VERSION}) and with no upgrade path; point "
                "--storage at a new database, or delete this one if its instances are not needed"
            )
