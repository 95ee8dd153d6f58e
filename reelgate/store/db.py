"""Database engines and sessions for SQLite (the embedded default) and PostgreSQL.

SQLite runs in WAL mode with a busy timeout. Python's sqlite3 module begins transactions
lazily and SQLite upgrades a read transaction to a write one only if no other writer slipped
in; that upgrade fails at once with "database is locked" instead of waiting. So write
transactions start with ``BEGIN IMMEDIATE`` (they take the write lock up front and wait for it),
and read-only sessions start with a plain ``BEGIN``.

This module is where SQLAlchemy's errors stop: the sessions of ``write()`` and ``read()`` raise
the store's own errors from ``reelgate.core.errors`` instead (the original is the ``__cause__``):

* ``IntegrityError`` becomes ``Conflict`` (a duplicate key, a broken ``CHECK``);
* ``OperationalError`` and a connection pool timeout become ``StoreUnavailable`` (1010, which
  clients retry), except during the commit, where the outcome is unknown, and except SQLite's
  plain ``SQLITE_ERROR`` (a bad statement, which Python's sqlite3 also reports as an
  ``OperationalError``): those become a plain ``StoreError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from reelgate.core.errors import Conflict, StoreError, StoreUnavailable

_SQLITE_BEGIN = "reelgate_sqlite_begin"
#: Seconds a new PostgreSQL connection may take to be made before the database counts as
#: unreachable (libpq's ``connect_timeout``, whose own default is to wait for ever: a database
#: host that stopped answering would hold every request until the client gave up). A
#: ``connect_timeout`` in the database URL wins.
PG_CONNECT_TIMEOUT_SECONDS = 5
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
        else:
            # Pooled connections are pinged before use, so one that died while idle is
            # replaced rather than failing a request.
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
            if "connect_timeout" not in parsed.query:
                kwargs["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT_SECONDS}
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            _install_sqlite_hooks(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that may write; committed on success, rolled back on error."""
        with self._session(immediate=True) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A transaction for reading (on SQLite it does not take the write lock)."""
        with self._session(immediate=False) as session:
            yield session

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
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def _store_errors() -> Iterator[None]:
    """Raise the store's errors in place of SQLAlchemy's."""
    try:
        yield
    except IntegrityError as exc:
        raise Conflict("a write broke a database constraint") from exc
    except (OperationalError, PoolTimeout) as exc:
        if getattr(getattr(exc, "orig", None), "sqlite_errorcode", None) == _SQLITE_ERROR:
            raise StoreError("the database refused a statement") from exc
        raise StoreUnavailable("the database is unreachable or busy") from exc


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
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
