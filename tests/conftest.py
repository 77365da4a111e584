from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError

from durafn.store import Store, open_store

# ---------------------------------------------------------------------------------------------
# Store fixtures: `store` is a fresh, empty store on every backend (SQLite file, PostgreSQL
# schema). The PostgreSQL case runs when DURAFN_TEST_POSTGRES_URL names a server.
# ---------------------------------------------------------------------------------------------

POSTGRES_URL_VARIABLE = "DURAFN_TEST_POSTGRES_URL"
POSTGRES_HOW_TO = (
    f"set {POSTGRES_URL_VARIABLE}=postgresql+psycopg://user@host/db to run the PostgreSQL cases"
)


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sqlalchemy.Engine]:
    """An engine on the test server's database, for creating and dropping per-test schemas."""
    raw = os.environ.get(POSTGRES_URL_VARIABLE)
    if not raw:
        pytest.skip(POSTGRES_HOW_TO)
    engine = sqlalchemy.create_engine(
        make_url(raw).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except OperationalError as error:
        engine.dispose()
        # Set but unreachable is a broken test setup, not a reason to skip silently.
        pytest.fail(f"{POSTGRES_URL_VARIABLE} is set but the server cannot be reached: {error}")
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(postgres_admin: sqlalchemy.Engine) -> Iterator[str]:
    """A URL whose connections see only a new, empty schema, dropped after the test."""
    schema = f"durafn_test_{uuid.uuid4().hex[:16]}"
    with postgres_admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url: URL = postgres_admin.url.update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with postgres_admin.connect() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A URL of a new SQLite file in the test's temporary folder."""
    return f"sqlite:///{tmp_path / 'durafn.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    """The URL of a new, empty store, once per backend."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A fresh store on each backend, closed after the test."""
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[Store]:
    """A store on a fresh schema of the test server."""
    opened = open_store(postgres_url)
    yield opened
    opened.close()


# ---------------------------------------------------------------------------------------------
# End of the store fixtures.
# ---------------------------------------------------------------------------------------------
