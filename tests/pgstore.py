"""The connections a PostgreSQL store runs its transactions on, for tests that look at them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from durafn.store import open_store
from durafn.store.pgwire import WireConnection
from durafn.store.sql import SqlStore


@contextlib.contextmanager
def store_connection(url: str) -> Iterator[WireConnection]:
    """One of the connections the store at ``url`` runs its transactions on; the store and the
    connection are closed afterwards.
    """
    store = open_store(url)
    assert isinstance(store, SqlStore)
    try:
        conn = store._dialect.connect()
        try:
            yield conn
        finally:
            conn.close()
    finally:
        store.close()
