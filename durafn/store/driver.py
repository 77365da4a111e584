"""Plain SQL on DB-API connections: the store's fixed statements skip SQLAlchemy's per-call cost.

SQLAlchemy builds the schema and the ad-hoc instance queries; every statement the workers run
thousands of times a second is plain SQL text with ``:name`` parameters, prepared once per
dialect and run on a connection each thread keeps for itself (a transaction through the engine
costs several times the database's own work, measured in bench/).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from durafn.store.base import Work

T = TypeVar("T")
Params = Mapping[str, Any]
_RETRIES = 5
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class Cursor(Protocol):
    """The part of a DB-API cursor the store uses."""

    rowcount: int
    description: Any

    def execute(self, sql: str, params: Any = ...) -> Any:
        """Run one statement."""
        ...

    def executemany(self, sql: str, params: Iterable[Any]) -> Any:
        """Run one statement once per parameter set."""
        ...

    def fetchall(self) -> list[Any]:
        """The remaining rows."""
        ...

    def fetchone(self) -> Any:
        """The next row, or None."""
        ...


class Driver(Protocol):
    """How one database's DB-API driver is connected, spelled and given transactions."""

    def connect(self, wait: bool = True) -> Any:
        """Open a new DB-API connection configured for the store; ``wait`` False: one whose
        transactions fail at once where they would wait for another writer's lock.
        """
        ...

    def prepare(self, sql: str) -> str:
        """Rewrite ``:name`` parameters into the driver's own placeholder style."""
        ...

    def pipeline(self, conn: Any) -> contextlib.AbstractContextManager[Callable[[], None] | None]:
        """Send a write transaction's statements without waiting for each reply, where the
        driver can; yields a function that waits for every reply so far (None: each statement
        already waits for its own).
        """
        ...

    def refusing(self, sql: str, then: str | None = None) -> str:
        """``sql``, a statement whose rows admit a write, as one the server fails when it
        returns none, where the driver pipelines (see :meth:`is_refusal`): the writes sent
        behind it, and the COMMIT, are then undone without waiting for its reply. As is where
        each reply is read before the next statement goes out. ``then``: a DELETE ... RETURNING
        run behind ``sql`` in the same statement, reading ``sql``'s rows as ``admitted``; the
        statement is then refused unless ``then`` returns rows too (only where the dialect's
        ``writes_in_with``).
        """
        ...

    def is_refusal(self, error: Exception) -> bool:
        """Tell whether a statement of :meth:`refusing` failed the transaction."""
        ...

    def resume(self, conn: Any) -> None:
        """After a statement failed inside a transaction, let the server take statements
        again (a pipeline skips everything up to its next sync); the transaction stays open,
        failed until rolled back to a savepoint.
        """
        ...

    def begin(self, cursor: Cursor, write: bool) -> None:
        """Start a transaction (a write one takes the write lock where the database has one)."""
        ...

    def finish(self, conn: Any, cursor: Cursor, work: Work, write: bool) -> None:
        """Announce ``work`` to other hosts and commit (a read has nothing to commit)."""
        ...

    def abort(self, conn: Any) -> None:
        """Roll the transaction back."""
        ...

    def is_retryable(self, error: Exception) -> bool:
        """Tell whether the transaction only lost a conflict (a deadlock) and may rerun."""
        ...

    def is_disconnect(self, error: Exception, conn: Any) -> bool:
        """Tell whether ``conn`` is broken and must be replaced."""
        ...


def named_to_pyformat(sql: str) -> str:
    """``:name`` to ``%(name)s`` (psycopg); literal ``%`` doubled."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))


_UNREAD = object()


class Refused(Exception):
    """A statement of :meth:`Driver.refusing` found nothing to admit its write: the transaction
    was undone, and the store reports the refusal.
    """


class Pending:
    """A statement sent ahead (see :meth:`Tx.later`) whose reply is read when needed."""

    def __init__(self, cursor: Cursor, ready: bool) -> None:
        self._cursor = cursor
        self.ready = ready
        """True when the reply is already in (the driver does not pipeline)."""
        self._row: Any = _UNREAD
        if ready:  # read it before the cursor runs another statement
            self._row = cursor.fetchone() if cursor.description is not None else None

    def one(self) -> Any:
        """The first row (None: no row), waiting for it if need be; read once, kept."""
        if self._row is _UNREAD:
            self._row = self._cursor.fetchone()
        return self._row

    def scalar(self) -> Any:
        """The first column of the first row (None: no row)."""
        row = self.one()
        return None if row is None else row[0]


class Tx:
    """One transaction: run prepared statements; :meth:`announce` work for other hosts."""

    def __init__(
        self,
        conn: Any,
        cursor: Cursor,
        wait: Callable[[], None] | None = None,
        *,
        careful: bool = False,
    ) -> None:
        self.conn = conn
        self.cursor = cursor
        self.work = Work.NONE
        self.statements = 0
        """Statements run so far: none means a failure cannot have been caused by this one."""
        self.wait = wait
        """Waits for the replies of statements sent ahead (None: the driver does not pipeline)."""
        self.careful = careful
        """Each call joining this group transaction runs under a savepoint (see
        Connections.group)."""
        self._readers: list[Callable[[], None]] = []
        self._reader: Cursor | None = None

    def run(self, sql: str, params: Params | None = None) -> None:
        """Execute ``sql`` (already prepared); its reply is not read."""
        self.cursor.execute(sql, params if params is not None else {})
        self.statements += 1

    def rows(self, sql: str, params: Params | None = None) -> list[Any]:
        """Execute and fetch every row."""
        return self._replying(sql, params).fetchall()

    def one(self, sql: str, params: Params | None = None) -> Any:
        """Execute and fetch the first row (None: no row)."""
        return self._replying(sql, params).fetchone()

    def scalar(self, sql: str, params: Params | None = None) -> Any:
        """Execute and return the first column of the first row (None: no row)."""
        row = self.one(sql, params)
        return None if row is None else row[0]

    def count(self, sql: str, params: Params | None = None) -> int:
        """Execute and return the number of rows changed (waiting for the reply where the
        driver pipelines: the row count comes with it).
        """
        cursor = self._replying(sql, params)
        if self.wait is not None:
            self.wait()
        return cursor.rowcount

    def later(self, sql: str, params: Params) -> Pending:
        """Execute ``sql`` without waiting for its reply where the driver pipelines: what
        follows is sent at once, and the reply is read from the Pending when needed.
        """
        return Pending(self._replying(sql, params, read_now=False), ready=self.wait is None)

    def _replying(self, sql: str, params: Params | None, *, read_now: bool = True) -> Cursor:
        """Execute on a cursor whose reply is this statement's alone. Where the driver
        pipelines, each reply replaces the last one on the cursor that sent it whenever the
        reply is read, so a reply to an earlier statement could land on a shared cursor after a
        later one started on it. Statements whose replies are not read share one cursor; a
        reply read at once uses another, which never has a reply outstanding; one read later,
        its own.
        """
        if self.wait is None:
            cursor = self.cursor
        elif read_now:
            if self._reader is None:
                self._reader = self.conn.cursor()
            cursor = self._reader
        else:
            cursor = self.conn.cursor()
        cursor.execute(sql, params if params is not None else {})
        self.statements += 1
        return cursor

    def many(self, sql: str, rows: Sequence[Params]) -> None:
        """Execute once per parameter set."""
        if rows:
            self.cursor.executemany(sql, rows)
            self.statements += 1

    def on_replies(self, read: Callable[[], None]) -> None:
        """Run ``read`` once the transaction has committed and every reply is in, so a whole
        group of calls (see Connections.group) waits for the server once, not once per call.
        ``read`` only reads replies: a write that must not commit is refused by the server
        (Driver.refusing) or before its writes are sent.
        """
        self._readers.append(read)

    def settle(self) -> None:
        """Run the reads of :meth:`on_replies`."""
        readers, self._readers = self._readers, []
        for read in readers:
            read()

    def announce(self, work: Work) -> None:
        """Tell the other hosts, when this transaction commits, that ``work`` was added."""
        self.work |= work

    def mark(self) -> tuple[Work, int]:
        """Where the work announced and the reads registered stand (see :meth:`undo_to`)."""
        return self.work, len(self._readers)

    def undo_to(self, mark: tuple[Work, int]) -> None:
        """Forget what was announced and registered since ``mark``: its writes were undone."""
        self.work, readers = mark
        del self._readers[readers:]


class Connections:
    """Transactions on connections owned one per thread, so none waits on a pool."""

    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[Any] = []
        self._closed = False

    def _connection(self, wait: bool = True) -> Any:
        if self._closed:
            raise RuntimeError("the store is closed")
        slot = "conn" if wait else "eager_conn"
        conn = getattr(self._local, slot, None)
        if conn is None:
            with self._lock:
                conn = self._driver.connect(wait)
                self._open.append(conn)
            setattr(self._local, slot, conn)
        return conn

    def _discard(self, conn: Any) -> None:
        for slot in ("conn", "eager_conn"):
            if getattr(self._local, slot, None) is conn:
                setattr(self._local, slot, None)
        with self._lock:
            if conn in self._open:
                self._open.remove(conn)
        with contextlib.suppress(Exception):  # broken already; a new one replaces it
            conn.close()

    def transaction(self, op: Callable[[Tx], T], *, write: bool = True) -> T:
        """Run ``op`` in one transaction and commit; rerun it after a deadlock, or on a new
        connection when the thread's one had died (the server restarted) before ``op`` ran.
        Inside :meth:`group`, ``op`` joins the group's transaction instead.
        """
        grouped: Tx | None = getattr(self._local, "group", None)
        if grouped is not None:
            return self._in_savepoint(grouped, op) if grouped.careful else op(grouped)
        attempt = 1
        while True:
            conn = self._connection()
            cursor = conn.cursor()
            tx = Tx(conn, cursor)
            # a read is one statement: nothing to send ahead
            pipeline = self._driver.pipeline(conn) if write else contextlib.nullcontext()
            try:
                with pipeline as tx.wait:
                    self._driver.begin(tx.cursor, write)
                    result = op(tx)
                    # sent behind the writes: a pipelined transaction waits on the server once
                    self._driver.finish(tx.conn, tx.cursor, tx.work, write)
                tx.settle()
                return result
            except Exception as error:
                broken = self._driver.is_disconnect(error, conn)
                if broken:
                    self._discard(conn)
                else:
                    self._driver.abort(conn)
                if self._driver.is_refusal(error):
                    raise Refused() from error
                # A connection that died while idle fails on the first statement: rerun.
                stale = broken and tx.statements == 0
                if attempt >= _RETRIES or not (stale or self._driver.is_retryable(error)):
                    raise
                attempt += 1
            except BaseException:
                self._driver.abort(conn)
                raise
            finally:
                cursor.close()

    def _in_savepoint(self, tx: Tx, op: Callable[[Tx], T]) -> T:
        """Run ``op`` in a careful group's transaction under a savepoint, reading its replies
        before the next call is sent: a failure undoes ``op``'s writes alone (a refusal is
        raised as Refused), and the other calls' writes stand.
        """
        mark = tx.mark()
        tx.run("SAVEPOINT call")
        try:
            result = op(tx)
            if tx.wait is not None:
                tx.wait()
        except Exception as error:
            self._driver.resume(tx.conn)
            tx.run("ROLLBACK TO SAVEPOINT call")
            tx.run("RELEASE SAVEPOINT call")
            tx.undo_to(mark)
            if self._driver.is_refusal(error):
                raise Refused() from error
            raise
        tx.run("RELEASE SAVEPOINT call")
        return result

    @contextlib.contextmanager
    def group(self, wait: bool = True, careful: bool = False) -> Iterator[None]:
        """One write transaction that the transactions started inside it join; committed at the
        end, rolled back (all of it) if the block raises. ``wait`` False: on this thread's
        connection that fails where it would wait for a lock (see Driver.connect).

        ``careful``: each transaction joining runs under a savepoint and waits for its replies,
        so one that fails or is refused is undone alone. That costs a round trip per call;
        a group rerun this way after a refusal failed it still commits once, where running its
        calls one by one would commit (and wait for the server's flush) once per call.
        """
        conn = self._connection(wait)
        cursor = conn.cursor()
        try:
            with self._driver.pipeline(conn) as read_replies:
                tx = Tx(conn, cursor, read_replies, careful=careful)
                self._driver.begin(cursor, True)
                self._local.group = tx
                yield
                self._local.group = None
                self._driver.finish(conn, cursor, tx.work, True)
            tx.settle()
        except BaseException as error:
            self._local.group = None
            if isinstance(error, Exception) and self._driver.is_disconnect(error, conn):
                self._discard(conn)
            else:
                self._driver.abort(conn)
            raise
        finally:
            cursor.close()

    def close(self) -> None:
        """Close every connection; later transactions fail."""
        with self._lock:
            self._closed = True
            opened, self._open = self._open, []
        for conn in opened:
            with contextlib.suppress(Exception):  # closing for good: nothing to do about it
                conn.close()
