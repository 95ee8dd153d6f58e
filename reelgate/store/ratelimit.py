"""The rate limiter's counters in reelgate's own database, as a ``limits`` storage.

Every API process counts in the same table (``rate_counters``), so N processes allow the rate
once, not N times, with no other service to run. Only the fixed-window strategy is supported:
a counter is one row, ``(key, count, expires_at)``, and a hit is one atomic statement::

    INSERT INTO rate_counters (key, count, expires_at) VALUES (:key, :amount, :now + :expiry)
    ON CONFLICT (key) DO UPDATE SET
        count      = CASE WHEN rate_counters.expires_at <= :now THEN :amount
                          ELSE rate_counters.count + :amount END,
        expires_at = CASE WHEN rate_counters.expires_at <= :now THEN :now + :expiry
                          ELSE rate_counters.expires_at END
    RETURNING count

SQLite (3.35 and later) and PostgreSQL both run it as one atomic step: concurrent hits on one
key are serialised by the row (PostgreSQL) or the database's write lock (SQLite), and an expired
window starts again in the same statement, so there is no read-then-write race. Expired rows
are deleted now and then (``CLEANUP_SECONDS``).

Times are Unix seconds from this host's clock, as the queue's leases are: hosts sharing one
database must keep their clocks in step.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, cast

from limits.storage import Storage
from sqlalchemy import Float, Integer, String, Table, bindparam, case, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from reelgate.core.errors import StoreError
from reelgate.store.db import Database
from reelgate.store.tables import RateCounter

log = logging.getLogger("reelgate.ratelimit")

#: How often (at most) one process deletes expired counters.
CLEANUP_SECONDS = 60.0


def hit(session: Session, key: str, *, expiry: float, amount: int, now: float) -> int:
    """Add ``amount`` to ``key``'s counter, starting a new window of ``expiry`` seconds when the
    last one ended; the count after the hit."""
    return hit_window(session, key, expiry=expiry, amount=amount, now=now)[0]


def hit_window(
    session: Session, key: str, *, expiry: float, amount: int, now: float
) -> tuple[int, float]:
    """``hit``, returning (the count after the hit, the end of its window)."""
    statement = _HITS[session.get_bind().dialect.name]
    parameters = {"counter": key, "amount": amount, "now": now, "end": now + expiry}
    row = session.connection().execute(statement, parameters).one()
    return int(row[0]), float(row[1])


def _hit_statement(dialect: str) -> Any:
    """The statement of the module's docstring, with its values as parameters: built once per
    dialect, since building it cost more than running it."""
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    table = cast(Table, RateCounter.__table__)
    amount = bindparam("amount", type_=Integer)
    now, end = bindparam("now", type_=Float), bindparam("end", type_=Float)
    expired = table.c.expires_at <= now
    return (
        insert(table)
        .values(key=bindparam("counter", type_=String), count=amount, expires_at=end)
        .on_conflict_do_update(
            index_elements=[table.c.key],
            set_={
                "count": case((expired, amount), else_=table.c.count + amount),
                "expires_at": case((expired, end), else_=table.c.expires_at),
            },
        )
        .returning(table.c.count, table.c.expires_at)
    )


_HITS = {dialect: _hit_statement(dialect) for dialect in ("sqlite", "postgresql")}


def current(session: Session, key: str, now: float) -> tuple[int, float] | None:
    """(count, end of window) of ``key``'s live window; None when it has none."""
    row = session.execute(
        select(RateCounter.count, RateCounter.expires_at).where(
            RateCounter.key == key, RateCounter.expires_at > now
        )
    ).first()
    # By position: ``Row.count`` is the tuple method, not the column.
    return None if row is None else (int(row[0]), float(row[1]))


def delete_expired(session: Session, now: float) -> None:
    session.execute(delete(RateCounter).where(RateCounter.expires_at <= now))


def delete_key(session: Session, key: str) -> None:
    session.execute(delete(RateCounter).where(RateCounter.key == key))


def delete_all(session: Session) -> int:
    count = session.execute(select(func.count()).select_from(RateCounter)).scalar_one()
    session.execute(delete(RateCounter))
    return int(count)


class DatabaseStorage(Storage):
    """A ``limits`` storage over ``rate_counters`` (for ``FixedWindowRateLimiter``).

    Errors are the store's own (``StoreError`` and its subclasses), as everywhere in reelgate.
    """

    def __init__(self, db: Database, **options: Any) -> None:
        super().__init__(None, **options)
        self.db = db
        self._next_cleanup = 0.0
        self._cleanup_lock = threading.Lock()

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return StoreError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        with self.db.write() as session:
            count = hit(session, key, expiry=expiry, amount=amount, now=now)
        self._maybe_clean_up(now)
        return count

    def hit_in(self, session: Session, key: str, expiry: int) -> tuple[int, float]:
        """One hit on ``key`` inside the caller's transaction (which must be one that may
        write): (the count after it, the end of its window). Expired counters are deleted in
        the same transaction now and then."""
        now = time.time()
        if self._cleanup_due(now):
            delete_expired(session, now)
        return hit_window(session, key, expiry=expiry, amount=1, now=now)

    def get(self, key: str) -> int:
        with self.db.read() as session:
            window = current(session, key, time.time())
        return 0 if window is None else window[0]

    def get_expiry(self, key: str) -> float:
        now = time.time()
        with self.db.read() as session:
            window = current(session, key, now)
        return now if window is None else window[1]

    def check(self) -> bool:
        return self.db.ping() == ""

    def reset(self) -> int | None:
        with self.db.write() as session:
            return delete_all(session)

    def clear(self, key: str) -> None:
        with self.db.write() as session:
            delete_key(session, key)

    def _cleanup_due(self, now: float) -> bool:
        """Whether this thread should delete expired counters now; True once a minute at most.

        Expired rows are harmless (the next hit restarts them), they only take room.
        """
        with self._cleanup_lock:
            if now < self._next_cleanup:
                return False
            self._next_cleanup = now + CLEANUP_SECONDS
            return True

    def _maybe_clean_up(self, now: float) -> None:
        if not self._cleanup_due(now):
            return
        try:
            with self.db.write() as session:
                delete_expired(session, now)
        except StoreError as error:
            log.warning("could not delete expired rate counters: %s", error)
