"""Create durafn's schema on first use; refuse a database whose schema this code does not know."""

from __future__ import annotations

from sqlalchemy import Engine, func, inspect, select

from durafn.errors import StoreSchemaError
from durafn.store.dialect import Dialect
from durafn.store.schema import METADATA, schema_info

SCHEMA_VERSION = 1
"""The schema version this code writes and understands."""


def ensure_schema(engine: Engine, dialect: Dialect, where: str) -> None:
    """Create the tables and record SCHEMA_VERSION in an empty database, else check the version.

    ``where`` names the database in errors. Raises StoreSchemaError for any other version.
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
        elif version < SCHEMA_VERSION:
            raise StoreSchemaError(
                f"the durafn database at {where} has schema version {version}, older than any "
                f"this durafn can use (version {SCHEMA_VERSION}) and with no upgrade path; point "
                "--storage at a new database, or delete this one if its instances are not needed"
            )
