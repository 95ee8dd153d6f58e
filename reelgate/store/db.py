"""Database engines and sessions for SQLite (the embedded default) and PostgreSQL.

SQLite runs in WAL mode with a busy timeout. Python's sqlite3 module begins transactions
lazily and SQLite upgrades a read transaction to a write one only if no other writer slipped
in; that upgrade fails at once with "database is locked" instead of waiting. So write
transactions start with ``BEGIN IMMEDIATE`` (they take the write lock up front and wait for it),
and read-only sessions start with a plain ``BEGIN``.

Within one process, SQLite write transactions also take a lock of the ``Database`` first. Without
it, threads of one process waiting for the write lock wait in SQLite's busy handler, which sleeps
in steps of up to 100 ms: under load most of a write's latency was that sleep. With it, a
waiting thread wakes as soon as the previous writer commits; only writers of other processes
still meet the busy handler.

SQLite connections are kept in a pool large enough for every thread of the API's thread pool
(``SQLITE_POOL_SIZE``), so a request does not open one (nor run its ``PRAGMA``s) each time.

This module is where SQLAlchemy's errors stop: the sessions of ``write()`` and ``read()`` raise
the store's own errors from ``reelgate.core.errors`` instead (the original is the ``__cause__``):

* ``IntegrityError`` becomes ``Conflict`` (a duplicate key, a broken ``CHECK``);
* ``OperationalError`` and a connection pool timeout become ``StoreUnavailable`` (1010, which
  clients retry; ``LockConflict``, a kind of it, for a transaction PostgreSQL ended in a
  deadlock), except during the commit, where the outcome is unknown, and except SQLite's plain
  ``SQLITE_ERROR`` (a bad statement, which Python's sqlite3 also reports as an
  ``OperationalError``): those become a plain ``StoreError``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from reelgate.core.errors import Conflict, LockConflict, StoreError, StoreUnavailable
from reelgate.store import wakeup

_SQLITE_BEGIN = "reelgate_sqlite_begin"
#: Seconds a new PostgreSQL connection may take to be made before the database counts as
#: unreachable (libpq's ``connect_timeout``, whose own default is to wait for ever: a database
#: host that stopped answering would hold every request until the client gave up). A
#: ``connect_timeout`` in the database URL wins.
PG_CONNECT_TIMEOUT_SECONDS = 5
#: A pooled PostgreSQL connection idle for longer than this is pinged before it is used.
PING_AFTER_IDLE_SECONDS = 5.0
_CHECKED_IN_AT = "reelgate_checked_in_at"
#: SQLite connections kept open: anyio's default thread limit (40), so that each thread of the
#: API's pool can hold one, plus room for a worker's threads. Idle ones cost little.
SQLITE_POOL_SIZE = 48
#: PostgreSQL's ``deadlock_detected`` and ``serialization_failure``: this transaction lost a
#: race for rows and was ended; another attempt is expected to succeed.
_LOST_LOCK_RACE = frozenset({"40P01", "40001"})
#: SQLite's generic result code: a statement it could not run (not a busy or missing database).
_SQLITE_ERROR = 1


class Database:
    """One engine plus two session factories: ``write()`` and ``read()``."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if parsed.database and parsed.database != ":memory:":
                # Past the pool, connections are still made (never a wait for one), but closed
                # again when given back.
                kwargs.update(poolclass=QueuePool, pool_size=SQLITE_POOL_SIZE, max_overflow=-1)
        else:
            kwargs.update(pool_size=10, max_overflow=20)
            if "connect_timeout" not in parsed.query:
                kwargs["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT_SECONDS}
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            _install_sqlite_hooks(self.engine)
        else:
            _ping_idle_connections(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        #: One SQLite writer of this process at a time (see the module's docstring); re-entrant,
        #: so that a nested write waits in SQLite as it did without it.
        self._sqlite_writer = threading.RLock()
        #: The open ``transaction`` of each thread.
        self._thread = threading.local()
        #: How commits that ``wakeup.announce`` a claimable task wake this host's workers (SQLite;
        #: PostgreSQL delivers its ``NOTIFY`` itself).
        database_path = wakeup.sqlite_path(url)
        self.local_signal = wakeup.LocalSignal(database_path) if database_path else None

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that may write; committed on success, rolled back on error.

        Inside ``transaction(write=True)`` in the same thread: that transaction.
        """
        joined = self._joined()
        if joined is not None:
            if not self._thread.writes:
                raise StoreError("a write inside a read-only transaction")
            with _store_errors():
                yield joined
            return
        if not self.is_sqlite:
            with self._session(immediate=True) as session:
                yield session
            return
        with self._sqlite_writer, self._session(immediate=True) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A transaction for reading (on SQLite it does not take the write lock).

        Inside ``transaction`` in the same thread: that transaction.
        """
        joined = self._joined()
        if joined is not None:
            with _store_errors():
                yield joined
            return
        with self._session(immediate=False) as session:
            yield session

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Session]:
        """One transaction for several steps that each open their own: while it is open,
        ``read()`` (and, when ``write``, ``write()``) in this thread join it, and it commits
        once, at its end. Each transaction costs about as much as a simple query, so a request
        made of steps pays one instead of one per step.

        Only for steps that leave the transaction usable when they fail: one that raises a
        domain error a caller catches has rolled nothing back of its own.
        """
        if self._joined() is not None:
            raise StoreError("transactions do not nest")
        with self.write() if write else self.read() as session:
            self._thread.session, self._thread.writes = session, write
            try:
                yield session
            finally:
                self._thread.session = None

    def _joined(self) -> Session | None:
        session: Session | None = getattr(self._thread, "session", None)
        return session

    def ping(self) -> str:
        """Why the database does not answer ``SELECT 1``, or ``""`` when it does."""
        try:
            with self._raw_session(immediate=False) as session:
                session.execute(text("SELECT 1"))
        except Exception as exc:  # any failure means "not ready"; its text is the reason
            return str(exc)
        return ""

    @contextmanager
    def _session(self, *, immediate: bool) -> Iterator[Session]:
        with _store_errors(), self._raw_session(immediate=immediate) as session:
            yield session

    @contextmanager
    def _raw_session(self, *, immediate: bool) -> Iterator[Session]:
        session = self._sessions()
        try:
            if self.is_sqlite:
                session.connection(execution_options={_SQLITE_BEGIN: immediate})
            try:
                yield session
            except BaseException:
                session.rollback()
                raise
            try:
                session.commit()
            except (OperationalError, PoolTimeout) as exc:
                raise StoreError(
                    "the database failed during the commit; whether it was written is unknown"
                ) from exc
            if self.local_signal is not None and session.info.get(wakeup.ANNOUNCED):
                self.local_signal.send()
        finally:
            session.close()

    def listen_for_tasks(self, wake: threading.Event) -> wakeup.Listener | None:
        """Set ``wake`` whenever a commit announces a claimable task (see ``wakeup``); None
        where that cannot be heard, and idle workers only poll."""
        if self.local_signal is not None:
            return self.local_signal.listen(wake)
        if self.engine.dialect.name == "postgresql":
            return wakeup.PostgresListener(self.url, wake)
        return None

    def dispose(self) -> None:
        if self.local_signal is not None:
            self.local_signal.close()
        self.engine.dispose()


@contextmanager
def _store_errors() -> Iterator[None]:
    """Raise the store's errors in place of SQLAlchemy's."""
    try:
        yield
    except IntegrityError as exc:
        raise Conflict("a write broke a database constraint") from exc
    except (OperationalError, PoolTimeout) as exc:
        driver_error = getattr(exc, "orig", None)
        if getattr(driver_error, "sqlite_errorcode", None) == _SQLITE_ERROR:
            raise StoreError("the database refused a statement") from exc
        if getattr(driver_error, "sqlstate", None) in _LOST_LOCK_RACE:
            raise LockConflict("the database ended this transaction in a lock race") from exc
        raise StoreUnavailable("the database is unreachable or busy") from exc


def _ping_idle_connections(engine: Engine) -> None:
    """Ping a pooled connection before use when it has been idle a while, so that one that died
    meanwhile (a database restart, a proxy's idle timeout) is replaced rather than failing a
    request.

    SQLAlchemy's ``pool_pre_ping`` pings before *every* use: a round trip more for each
    transaction, on every request and every claim, for connections that were in use a moment
    ago. A connection that fails in use anyway (the database went away under load) makes
    SQLAlchemy discard every pooled connection as old as it, and that request is answered
    1010, which clients retry.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        # A new connection has no mark (the record's info goes with its DBAPI connection).
        idle_since = record.info.get(_CHECKED_IN_AT)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # any failure: the pool replaces it and tries again
            raise DisconnectionError(str(error)) from error


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, start transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(_SQLITE_BEGIN, True)
        statement = "BEGIN IMMEDIATE" if immediate else "BEGIN"
        # Straight to the driver: through ``exec_driver_sql`` this one statement cost as much
        # as the query it starts the transaction for. Its errors are wrapped here as SQLAlchemy
        # wraps those of the statements it runs ("database is locked": OperationalError).
        try:
            connection.connection.driver_connection.execute(statement)
        except sqlite3.Error as error:
            raise DBAPIError.instance(statement, None, error, sqlite3.Error) from error
