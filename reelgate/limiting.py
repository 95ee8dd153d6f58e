"""Rate limits per API key, shared by every API process, and fault-injected refusals.

Two budgets per key, counted apart so that polling never eats into submitting and the other way
round (``Budget``): submits (model endpoints, uploads, ``POST /v1/videos``) at
``rate_limit_per_second`` and everything else a key may call (query, v1 task endpoints, account,
queue status, price preview, the other ``/v1/videos`` calls) at ``query_rate_limit_per_second``.

Each budget is a fixed window of ``rate_limit_window_seconds`` (``limits``'
``FixedWindowRateLimiter``) holding ``rate × window`` requests: a burst up to that many is
accepted at once, the average over every window is the rate, and a refused request is told when
its window ends. A rate too small for one request per window gets a longer window (0.05 a
second: one request per 20 s). The counters live in reelgate's database by default
(``reelgate.store.ratelimit``), so every process that shares the database shares the limits, or
in Redis when ``rate_limit_storage`` names one.

If the counters cannot be reached, requests are let through (and a warning logged, once a
minute): the limit protects the service, it must not be what takes it down.

Counted in the database, a request's hit is one statement of the transaction that reads its key
(``check(…, session=…)``), not a transaction of its own: the limit stays exact across processes
(every hit is an atomic step on the shared row) and costs one statement per request. On SQLite
that transaction takes the write lock, so with limits on, every authenticated request is a short
write.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from enum import StrEnum

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.errors import StorageError as LimitsStorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy.orm import Session

from reelgate.config import Settings
from reelgate.core.errors import RateLimited, StoreError
from reelgate.core.faults import Faults
from reelgate.store import repo
from reelgate.store.db import Database
from reelgate.store.ratelimit import DatabaseStorage

log = logging.getLogger("reelgate.ratelimit")

#: Seconds a Redis command may take before the request is let through without it.
REDIS_TIMEOUT_SECONDS = 2.0
#: The least a refusal tells a client to wait.
MIN_RETRY_AFTER = 1.0
#: How often (at most) an unreachable counter store is logged.
WARN_EVERY_SECONDS = 60.0


class Budget(StrEnum):
    """Which of a key's two budgets a request counts against."""

    #: Model submits and uploads: requests that create work or store files.
    SUBMIT = "submit"
    #: Everything else: reading tasks and the account, cancelling, price previews.
    QUERY = "query"


def limit_for(rate: float, window_seconds: int) -> RateLimitItem | None:
    """The ``limits`` item for ``rate`` requests a second over ``window_seconds``; None when the
    rate is 0 (unlimited)."""
    if not rate > 0 or not math.isfinite(rate):
        return None
    seconds = max(window_seconds, math.ceil(1 / rate))
    return RateLimitItemPerSecond(max(1, round(rate * seconds)), seconds, namespace="reelgate")


class RateLimits:
    """The limiter of one process; its counters are shared through the storage."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        window = settings.rate_limit_window_seconds
        self.items: dict[Budget, RateLimitItem | None] = {
            Budget.SUBMIT: limit_for(settings.rate_limit_per_second, window),
            Budget.QUERY: limit_for(settings.query_rate_limit_per_second, window),
        }
        self._limiter: FixedWindowRateLimiter | None = None
        self._lock = threading.Lock()
        #: Requests seen per key, for fault-injected refusals (per process: a test runs one).
        self._requests: dict[int, int] = {}
        self._warned_at = -math.inf

    def counts_in_database(self, budget: Budget) -> bool:
        """Whether ``budget``'s requests are counted in reelgate's database (so the
        transaction that counts one must be one that may write)."""
        return self.items[budget] is not None and not self.settings.rate_limit_storage

    def check(
        self,
        key_id: int,
        budget: Budget,
        faults: Faults | None = None,
        *,
        session: Session | None = None,
    ) -> None:
        """Count one request of ``key_id``; raise ``RateLimited`` when it must be refused.

        With ``session`` (a transaction that may write, see ``counts_in_database``), a
        database counter is hit in it; its errors are then the transaction's own.
        """
        if faults is not None and faults.rate_limit_rate > 0:
            with self._lock:
                number = self._requests.get(key_id, 0)
                self._requests[key_id] = number + 1
            if faults.refuses(number):
                raise RateLimited(retry_after=MIN_RETRY_AFTER)
        item = self.items[budget]
        if item is None:
            return
        identity = (budget.value, str(key_id))
        limiter = self.limiter()
        if session is not None and isinstance(limiter.storage, DatabaseStorage):
            count, reset = limiter.storage.hit_in(
                session, item.key_for(*identity), item.get_expiry()
            )
            if count <= item.amount:
                return
        else:
            try:
                if limiter.hit(item, *identity):
                    return
                reset = limiter.get_window_stats(item, *identity).reset_time
            except (StoreError, LimitsStorageError) as error:
                self._unreachable(error)
                return
        raise RateLimited(
            f"more than {item.amount} {budget.value} requests in {item.get_expiry()} s "
            f"for this key",
            retry_after=max(MIN_RETRY_AFTER, float(math.ceil(reset - time.time()))),
        )

    def limiter(self) -> FixedWindowRateLimiter:
        """The strategy over its storage, made on first use (a CLI command never needs it)."""
        with self._lock:
            if self._limiter is None:
                self._limiter = FixedWindowRateLimiter(self._storage())
            return self._limiter

    def _storage(self) -> Storage:
        url = self.settings.rate_limit_storage
        if not url:
            return DatabaseStorage(self.db)
        # One deployment's keys apart from any other's on a shared Redis: the prefix names
        # this database, whose key ids the counters are about.
        with self.db.write() as session:
            instance = repo.ensure_meta(session, "instance_id", lambda: uuid.uuid4().hex[:16])
        storage = storage_from_string(
            url,
            key_prefix=f"reelgate:{instance}",
            wrap_exceptions=True,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
        assert isinstance(storage, Storage)
        return storage

    def _unreachable(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning("rate limits not applied: their counters cannot be reached (%s)", error)
