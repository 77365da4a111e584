"""LISTEN/NOTIFY: how PostgreSQL hosts hear of each other's work in milliseconds.

A write that adds work runs ``pg_notify`` in the same transaction, which PostgreSQL delivers only
when (and only if) that transaction commits. Each host listens on one dedicated connection:
LISTEN belongs to a session, so a pooled connection would lose it when handed to someone else.
The payload is ``"<Work value> <origin>"``; a listener ignores its own store's announcements,
which its host already knows of in-process.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import Engine

from durafn.store.base import Work

CHANNEL = "durafn_work"
# The listener only reads, so a server that vanished (no FIN: a network cut, a failover) would go
# unnoticed for the OS default of two hours; TCP keepalives notice within a minute or so.
_CONNECTION_DEFAULTS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
_NOTIFY = "SELECT pg_notify(%s, %s)"


def connect_args(engine: Engine) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """psycopg.connect's arguments for ``engine``'s URL, with the connection defaults."""
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    return tuple(args), {**_CONNECTION_DEFAULTS, **kwargs}  # what the URL says wins


class Announcer:
    """The announcing side, one per store object: ``origin`` tells its announcements apart."""

    def __init__(self) -> None:
        self.origin = uuid.uuid4().hex[:12]

    def announce(self, cursor: Any, work: Work) -> None:
        """NOTIFY the listeners of ``work`` when ``cursor``'s transaction commits."""
        if work:
            cursor.execute(_NOTIFY, (CHANNEL, f"{work.value} {self.origin}"))

    def listen(self, engine: Engine) -> PostgresListener:
        """A listener on ``engine``'s database that skips this announcer's own announcements."""
        args, kwargs = connect_args(engine)

        def connect() -> psycopg.Connection[Any]:
            return psycopg.connect(*args, autocommit=True, **kwargs)

        return PostgresListener(connect, self.origin)


class PostgresListener:
    """A WorkListener on its own autocommit connection, woken by the socket or by interrupt()."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], origin: str) -> None:
        self._connect = connect
        self._origin = origin
        self._conn: psycopg.Connection[Any] | None = None
        self._fd = -1  # kept: a lost connection no longer tells its socket
        self._selector = selectors.DefaultSelector()
        # A socket pair, not a pipe: selectors on Windows take only sockets.
        self._wake, self._waker = socket.socketpair()
        self._wake.setblocking(False)
        self._waker.setblocking(False)
        self._selector.register(self._wake, selectors.EVENT_READ)
        try:
            self._subscribe()  # at once: what is committed after listen() returns is heard
        except BaseException:
            self.close()
            raise

    def _subscribe(self) -> None:
        conn = self._connect()
        try:
            conn.execute(f"LISTEN {CHANNEL}")
            fd = conn.fileno()
            self._selector.register(fd, selectors.EVENT_READ)
        except BaseException:
            conn.close()
            raise
        self._conn, self._fd = conn, fd

    def _drop(self) -> None:
        if self._conn is not None:
            self._selector.unregister(self._fd)
            self._conn.close()
            self._conn, self._fd = None, -1

    def wait(self, timeout: float) -> Work:
        """Block up to ``timeout`` seconds for announcements (see WorkListener)."""
        if self._conn is None:
            self._subscribe()
            return Work.ALL  # announcements made while the connection was down are lost
        found = Work.NONE
        for key, _ in self._selector.select(timeout):
            if key.fileobj is self._wake:
                with contextlib.suppress(BlockingIOError):
                    self._wake.recv(4096)
                continue
            try:
                # The socket is readable, so this reads without waiting (timeout=0 polls once).
                for notify in self._conn.notifies(timeout=0):
                    found |= self._decode(notify.payload)
            except psycopg.Error:
                self._drop()
                raise
        return found

    def _decode(self, payload: str) -> Work:
        value, _, origin = payload.partition(" ")
        if origin == self._origin:
            return Work.NONE
        try:
            return Work(int(value))
        except ValueError:
            return Work.ALL  # from another durafn version: look at everything

    def interrupt(self) -> None:
        """Make a wait in progress, or else the next one, return at once."""
        # Full buffer: a wake-up is pending already. Closed: nothing is waiting any more.
        with contextlib.suppress(OSError):
            self._waker.send(b"\0")

    def close(self) -> None:
        """Stop listening and release the connection."""
        self._drop()
        self._selector.close()
        self._wake.close()
        self._waker.close()
