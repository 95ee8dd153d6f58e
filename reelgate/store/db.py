"""Database engines and sessions for SQLite (the embedded default) and PostgreSQL.

SQLite runs in WAL mode with a busy timeout. Python's sqlite3 module begins transactions
lazily and SQLite upgrades a read transaction to a write one only if no other writer slipped
in; that upgrade fails at once with "database is locked" instead of waiting. So write
transactions start with ``BEGIN IMMEDIATE`` (they take the write lock up front and wait for it),
and read-only sessions start with a plain ``BEGIN``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

_SQLITE_BEGIN = "reelgate_sqlite_begin"


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
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
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
        with self._session(immediate=False) as session:
            yield session

    @contextmanager
    def _session(self, *, immediate: bool) -> Iterator[Session]:
        session = self._sessions()
        if self.is_sqlite:
            session.connection(execution_options={_SQLITE_BEGIN: immediate})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


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
