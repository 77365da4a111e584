"""A lean PostgreSQL connection for the store's own statements, on libpq's pipeline (psycopg.pq).

psycopg's cursors and pipeline spend several times the client CPU of the statements themselves
on each one, and a step's transaction is mostly that CPU (bench: about 430 µs against 100 µs
for a chain step's statements). This keeps psycopg for connecting, adapting values and naming
errors, and sends the statements with libpq's own calls. Every statement is prepared on the
server on its first use and counted as prepared only once the server confirms it, so a
preparation the server skipped (sent behind a failed statement) is sent again, never assumed.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import itertools
import re
import selectors
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import errors, pq
from psycopg.adapt import PyFormat, Transformer
from psycopg.pq.abc import PGresult

Params = Mapping[str, Any] | Sequence[Any]
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%%")
_SUCCEEDED = frozenset({pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK})
_Key = tuple[str, tuple[int, ...] | None]
"""A prepared statement: its SQL and its parameters' types (as psycopg keys them)."""


@functools.lru_cache(maxsize=1024)
def numbered(sql: str) -> tuple[str, tuple[str, ...] | None]:
    """``sql`` with psycopg's ``%(name)s`` or ``%s`` placeholders as PostgreSQL's ``$1``...,
    and the parameter names in that order (None: the parameters are positional).
    """
    names: list[str] = []
    positional = itertools.count(1)

    def number(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%"
        name = match.group(1)
        if name is None:
            return f"${next(positional)}"
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    text = _PLACEHOLDER.sub(number, sql)
    if names and next(positional) > 1:
        raise ValueError(f"named and positional parameters mixed in {sql!r}")
    return text, tuple(names) if names else None


class WireCursor:
    """The DB-API cursor part the store uses (driver.Cursor), on a :class:`WireConnection`:
    ``execute`` sends, a fetch waits for the reply.
    """

    def __init__(self, conn: WireConnection) -> None:
        self._conn = conn
        self.outstanding = 0
        """Statements sent whose replies are not in yet."""
        self.rowcount = -1
        self._result: PGresult | None = None
        self._rows: list[Any] = []
        self._read = 0
        self._error: Exception | None = None

    @property
    def description(self) -> list[str] | None:
        """The column names of the last reply (None: it has no rows to return)."""
        result = self._ready()
        if result is None or not result.nfields:
            return None
        return [(result.fname(n) or b"").decode() for n in range(result.nfields)]

    def execute(self, sql: str, params: Params = ()) -> None:
        """Send one statement (``%(name)s`` or ``%s`` parameters)."""
        self._conn.send(self, sql, params)

    def executemany(self, sql: str, params: Iterable[Params]) -> None:
        """Send one statement per parameter set."""
        for one in params:
            self._conn.send(self, sql, one)

    def fetchone(self) -> Any:
        """The next row of the last reply, or None."""
        self._ready()
        if self._read >= len(self._rows):
            return None
        self._read += 1
        return self._rows[self._read - 1]

    def fetchall(self) -> list[Any]:
        """The remaining rows of the last reply."""
        self._ready()
        rows, self._read = self._rows[self._read :], len(self._rows)
        return rows

    def close(self) -> None:
        """Nothing to free: replies are read whole."""

    def replied(self, result: PGresult, rows: list[Any]) -> None:
        """Take the reply to this cursor's oldest statement sent."""
        self.outstanding -= 1
        self._result, self._rows, self._read, self._error = result, rows, 0, None
        self.rowcount = -1 if result.command_tuples is None else result.command_tuples

    def failed(self, error: Exception) -> None:
        """Take a failure in place of the reply to this cursor's oldest statement sent."""
        self.outstanding -= 1
        self._error = error

    def _ready(self) -> PGresult | None:
        if self.outstanding:
            self._conn.read_through(self)
        if self._error is not None:
            raise self._error
        return self._result


class WireConnection:
    """A psycopg connection whose statements go out through libpq's pipeline, each prepared."""

    def __init__(self, conn: psycopg.Connection[Any], *, send_early: bool = False) -> None:
        self.conn = conn
        self.send_early = send_early
        """Send each statement as it is made, not at the next wait or sync (see send)."""
        self._pg = conn.pgconn
        self._pg.nonblocking = 1
        self._encoding = conn.info.encoding
        self._adapt = Transformer(conn)
        self._prepared: dict[_Key, bytes] = {}
        self._names = (f"durafn_{n}".encode() for n in itertools.count())
        # What each reply in flight is for, in order: a cursor's statement, a preparation, or
        # None for a sync.
        self._awaited: collections.deque[WireCursor | _Key | None] = collections.deque()
        self._failure: Exception | None = None
        self._selectors: dict[int, selectors.BaseSelector] = {}
        for events in (selectors.EVENT_READ, selectors.EVENT_READ | selectors.EVENT_WRITE):
            selector = selectors.DefaultSelector()
            selector.register(self._pg.socket, events)
            self._selectors[events] = selector

    @property
    def closed(self) -> bool:
        """True once closed, or broken."""
        return self.conn.closed or self.broken

    @property
    def broken(self) -> bool:
        """True when the server is gone (restarted, or a proxy hung up)."""
        return self._pg.status == pq.ConnStatus.BAD

    @property
    def transaction_status(self) -> pq.TransactionStatus:
        """Idle, in a transaction, or in a failed one."""
        return pq.TransactionStatus(self._pg.transaction_status)

    def cursor(self) -> WireCursor:
        """A new cursor."""
        return WireCursor(self)

    @contextlib.contextmanager
    def pipeline(self) -> Iterator[Callable[[], None]]:
        """Statements sent inside go out without waiting for replies; yields a function that
        waits for every reply so far. Leaving waits for all of them and raises the first
        failure among them (the server skipped everything after it).
        """
        # A server that hung up while the connection was idle is noticed here, before anything
        # is sent, so the caller knows that nothing it sent can have been lost with it. An idle
        # connection has nothing to read but such a goodbye (libpq takes it for a notice) and
        # the end of the stream, which raises.
        while self._selectors[selectors.EVENT_READ].select(0):
            self._pg.consume_input()
        self._pg.enter_pipeline_mode()
        try:
            yield self.wait
        except BaseException:
            self._end_pipeline(raising=False)
            raise
        self._end_pipeline(raising=True)

    def send(self, cursor: WireCursor, sql: str, params: Any) -> None:
        """Send ``sql`` for ``cursor``: in the pipeline, or outside one as a pipeline of its own."""
        if self._pg.pipeline_status == pq.PipelineStatus.OFF:
            with self.pipeline():
                self.send(cursor, sql, params)
            return
        text, names = numbered(sql)
        values = params if names is None else [params[name] for name in names]
        adapt = self._adapt
        dumped = adapt.dump_sequence(values, [PyFormat.AUTO] * len(values))
        key = (sql, adapt.types)
        name = self._prepared.get(key)
        if name is None:
            name = next(self._names)
            self._pg.send_prepare(name, text.encode(self._encoding), param_types=adapt.types)
            self._prepared[key] = name
            self._awaited.append(key)
        self._pg.send_query_prepared(name, dumped, param_formats=adapt.formats)
        if self.send_early:
            # The server runs each statement while the next is built, and the commit's WAL
            # flush is all that is left to wait for (a step's transaction: about a fifth
            # faster). Non-blocking: what the socket does not take now goes out later.
            self._pg.flush()
        cursor.outstanding += 1
        self._awaited.append(cursor)

    def wait(self) -> None:
        """Wait for every reply sent for so far; raise the first failure among them."""
        if self._awaited:
            self._pg.send_flush_request()
            self._read(lambda: not self._awaited)
        self._raise_failure()

    def resync(self) -> None:
        """After a failure in the pipeline: send a sync and read every reply up to it, so the
        server, which skips statements until then, takes them again; the failure is dropped
        (its statement's cursor has it).
        """
        self._pg.pipeline_sync()
        self._awaited.append(None)
        self._read(lambda: not self._awaited)
        self._failure = None

    def read_through(self, cursor: WireCursor) -> None:
        """Wait until ``cursor`` has every reply it was sent for."""
        self._pg.send_flush_request()
        self._read(lambda: not cursor.outstanding)
        self._raise_failure()

    def rollback(self) -> None:
        """Roll the transaction back."""
        self.cursor().execute("ROLLBACK")

    def close(self) -> None:
        """Close the connection."""
        for selector in self._selectors.values():
            selector.close()
        self.conn.close()

    def _end_pipeline(self, raising: bool) -> None:
        """Sync, read every reply and leave pipeline mode; raise the first failure if
        ``raising`` (otherwise the caller is raising already).
        """
        try:
            if not self.broken:
                self._pg.pipeline_sync()
                self._awaited.append(None)
                self._read(lambda: not self._awaited)
                self._pg.exit_pipeline_mode()
        except psycopg.OperationalError:
            # Where the conversation stands is unknown: the connection is never used again.
            self.conn.close()
            if raising:
                raise
        finally:
            while self._awaited:  # only when the replies could not be read
                awaited = self._awaited.popleft()
                if isinstance(awaited, WireCursor):
                    lost = "the connection was lost before the reply came"
                    awaited.failed(psycopg.OperationalError(lost))
        if raising:
            self._raise_failure()
        self._failure = None

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def _read(self, done: Callable[[], bool]) -> None:
        """Send what is buffered, then take replies in order until ``done()``."""
        self._flush()
        while not done():
            awaited = self._awaited[0]
            result = self._next_result()
            self._awaited.popleft()
            self._take(awaited, result)

    def _take(self, awaited: WireCursor | _Key | None, result: PGresult) -> None:
        if awaited is None:
            return  # a sync: the server takes statements again after a failure
        if result.status in _SUCCEEDED:
            if isinstance(awaited, WireCursor):
                rows: list[Any] = []
                if result.ntuples:
                    self._adapt.set_pgresult(result)
                    rows = self._adapt.load_rows(0, result.ntuples, tuple)
                awaited.replied(result, rows)
            return
        if result.status == pq.ExecStatus.FATAL_ERROR:
            error: Exception = errors.error_from_result(result, encoding=self._encoding)
            if self._failure is None:
                self._failure = error
        else:  # skipped, behind a failure
            error = errors.PipelineAborted("skipped: an earlier statement failed")
        if isinstance(awaited, WireCursor):
            awaited.failed(error)
        else:  # not prepared: sent again on its next use
            self._prepared.pop(awaited, None)

    def _next_result(self) -> PGresult:
        """The reply to the oldest statement in flight (libpq ends each with None, but a sync's
        with nothing).
        """
        result = self._libpq_result()
        if result is None:
            raise psycopg.OperationalError("the server sent no reply: the connection is lost")
        if result.status != pq.ExecStatus.PIPELINE_SYNC:
            while self._libpq_result() is not None:
                pass
        return result

    def _libpq_result(self) -> PGresult | None:
        """The next result libpq has, once the server has sent it."""
        while self._pg.is_busy():
            self._wait(selectors.EVENT_READ)
            self._pg.consume_input()
        return self._pg.get_result()

    def _flush(self) -> None:
        """Send everything buffered; read meanwhile, so a server blocked on sending its
        replies is never waited for.
        """
        while self._pg.flush():
            if self._wait(selectors.EVENT_READ | selectors.EVENT_WRITE) & selectors.EVENT_READ:
                self._pg.consume_input()

    def _wait(self, events: int) -> int:
        while True:
            ready = self._selectors[events].select()
            if ready:
                return ready[0][1]
