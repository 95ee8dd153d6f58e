"""Rate limits: the database storage (windows, atomic hits), the limiter on both storages, and
the answers of a rate-limited request."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from limits import RateLimitItemPerSecond
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import select

from reelgate.config import Settings
from reelgate.core.errors import RateLimited
from reelgate.core.faults import Faults
from reelgate.limiting import Budget, RateLimits, limit_for
from reelgate.runtime import Runtime
from reelgate.store import ratelimit, repo
from reelgate.store.ratelimit import DatabaseStorage
from reelgate.store.tables import RateCounter
from reelgate.worker.worker import Worker
from tests.conftest import LiveServer, free_port, make_settings, new_key

REDIS_URL = "redis://127.0.0.1:6379"
I2V = "/openapi/v2/kling-video-o3-pro/image-to-video"


def counters(runtime: Runtime) -> dict[str, tuple[int, float]]:
    with runtime.db.read() as session:
        rows = session.execute(select(RateCounter.key, RateCounter.count, RateCounter.expires_at))
        return {row[0]: (row[1], row[2]) for row in rows}


# -- the database storage ---------------------------------------------------------------------


def test_a_window_counts_up_then_starts_again_when_it_ends(runtime: Runtime) -> None:
    def hit(now: float, amount: int = 1) -> int:
        with runtime.db.write() as session:
            return ratelimit.hit(session, "k", expiry=10, amount=amount, now=now)

    assert [hit(1000.0), hit(1004.0), hit(1009.9, amount=3)] == [1, 2, 5]
    assert counters(runtime) == {"k": (5, 1010.0)}
    # The window ends at 1010: the next hit starts a new one, from its own time.
    assert hit(1010.0) == 1
    assert counters(runtime) == {"k": (1, 1020.0)}
    assert hit(1500.0, amount=2) == 2
    assert counters(runtime) == {"k": (2, 1510.0)}
    with runtime.db.read() as session:
        assert ratelimit.current(session, "k", 1509.0) == (2, 1510.0)
        assert ratelimit.current(session, "k", 1510.0) is None
        assert ratelimit.current(session, "other", 1000.0) is None


def test_hits_from_many_threads_are_counted_once_each(runtime: Runtime) -> None:
    storage = DatabaseStorage(runtime.db)
    seen: list[int] = []
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(25):
            count = storage.incr("shared", 3600)
            with lock:
                seen.append(count)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    # Every hit saw a count of its own: no two read the same value and wrote the same sum.
    assert sorted(seen) == list(range(1, 201))
    assert storage.get("shared") == 200


def test_the_storage_serves_limits_fixed_window(runtime: Runtime) -> None:
    storage = DatabaseStorage(runtime.db)
    limiter = FixedWindowRateLimiter(storage)
    item = RateLimitItemPerSecond(3, 3600)
    assert [limiter.hit(item, "a") for _ in range(4)] == [True, True, True, False]
    assert limiter.hit(item, "b")  # another identity has its own window
    stats = limiter.get_window_stats(item, "a")
    assert stats.remaining == 0
    before = counters(runtime)[item.key_for("a")][1]
    assert stats.reset_time == pytest.approx(before)
    assert not limiter.test(item, "a")
    limiter.clear(item, "a")
    assert limiter.test(item, "a") and limiter.hit(item, "a")
    assert storage.check()
    assert storage.reset() == 2
    assert counters(runtime) == {}
    assert storage.get("gone") == 0
    assert storage.get_expiry("gone") <= time.time()  # no window: free now


def test_expired_counters_are_cleaned_up(runtime: Runtime) -> None:
    storage = DatabaseStorage(runtime.db)
    with runtime.db.write() as session:
        ratelimit.hit(session, "old", expiry=10, amount=1, now=1000.0)
        ratelimit.hit(session, "live", expiry=10**10, amount=1, now=1000.0)
    storage._maybe_clean_up(2000.0)
    assert set(counters(runtime)) == {"live"}
    # Not again before CLEANUP_SECONDS have passed.
    with runtime.db.write() as session:
        ratelimit.hit(session, "old", expiry=10, amount=1, now=1000.0)
    storage._maybe_clean_up(2001.0)
    assert set(counters(runtime)) == {"live", "old"}


# -- the limiter -------------------------------------------------------------------------------


def test_rates_become_windows_of_whole_requests() -> None:
    submits = limit_for(20, 10)
    assert submits is not None and (submits.amount, submits.get_expiry()) == (200, 10)
    slow = limit_for(0.05, 10)  # one request per 20 s, not zero per 10 s
    assert slow is not None and (slow.amount, slow.get_expiry()) == (1, 20)
    assert limit_for(0, 10) is None
    assert limit_for(-1, 10) is None


def limited_settings(tmp_path: Path, db_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        # 2 submits and 3 queries per 1000 s: nothing here takes long enough to see a window end.
        "rate_limit_per_second": 0.002,
        "query_rate_limit_per_second": 0.003,
        "rate_limit_window_seconds": 1000,
    }
    values.update(overrides)
    return make_settings(tmp_path / "data", db_url, **values)


def accepted(limits: RateLimits, key_id: int, budget: Budget, tries: int) -> int:
    count = 0
    for _ in range(tries):
        try:
            limits.check(key_id, budget)
        except RateLimited as error:
            assert 1 <= error.retry_after <= 1000
            assert error.code == "1003" and error.http_status == 429
        else:
            count += 1
    return count


@pytest.mark.parametrize("storage", ["database", "redis"])
def test_budgets_and_keys_are_counted_apart(tmp_path: Path, db_url: str, storage: str) -> None:
    extra = {"rate_limit_storage": REDIS_URL} if storage == "redis" else {}
    runtime = Runtime.open(limited_settings(tmp_path, db_url, **extra))
    try:
        limits = RateLimits(runtime.settings, runtime.db)
        assert accepted(limits, 1, Budget.SUBMIT, 5) == 2
        assert accepted(limits, 1, Budget.QUERY, 5) == 3
        assert accepted(limits, 2, Budget.SUBMIT, 5) == 2
        # A second limiter (another process) sees the same counters.
        assert accepted(RateLimits(runtime.settings, runtime.db), 1, Budget.QUERY, 2) == 0
        if storage == "database":
            assert len(counters(runtime)) == 3
    finally:
        runtime.close()


def test_two_deployments_on_one_redis_do_not_share_counters(tmp_path: Path) -> None:
    runtimes = [
        Runtime.open(
            limited_settings(
                tmp_path / name, f"sqlite:///{tmp_path / name}.db", rate_limit_storage=REDIS_URL
            )
        )
        for name in ("one", "two")
    ]
    try:
        for runtime in runtimes:  # the same key id 1 in each
            assert accepted(RateLimits(runtime.settings, runtime.db), 1, Budget.SUBMIT, 3) == 2
    finally:
        for runtime in runtimes:
            runtime.close()


def test_an_unreachable_redis_lets_requests_through(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    closed = f"redis://127.0.0.1:{free_port()}"
    settings = limited_settings(tmp_path, f"sqlite:///{tmp_path}/r.db", rate_limit_storage=closed)
    runtime = Runtime.open(settings)
    try:
        limits = RateLimits(runtime.settings, runtime.db)
        with caplog.at_level(logging.WARNING, logger="reelgate.ratelimit"):
            assert accepted(limits, 1, Budget.SUBMIT, 4) == 4
        warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "cannot be reached" in warnings[0]  # once, not per request
    finally:
        runtime.close()


def test_fault_refusals_come_before_and_apart_from_the_limits(runtime: Runtime) -> None:
    limits = RateLimits(runtime.settings, runtime.db)  # the test settings: no limits
    always, half = Faults(rate_limit_rate=1), Faults(rate_limit_rate=0.5)
    for _ in range(3):
        with pytest.raises(RateLimited) as refused:
            limits.check(1, Budget.QUERY, always)
        assert refused.value.retry_after == 1
    outcomes = []
    for _ in range(6):
        try:
            limits.check(2, Budget.SUBMIT, half)
            outcomes.append(True)
        except RateLimited:
            outcomes.append(False)
    assert outcomes == [True, False, True, False, True, False]
    limits.check(3, Budget.SUBMIT, None)
    limits.check(3, Budget.SUBMIT, Faults(fail_rate=1))  # other faults refuse nothing


# -- answers -----------------------------------------------------------------------------------


@pytest.fixture
def limited(tmp_path: Path, db_url: str) -> Iterator[tuple[Runtime, httpx.Client]]:
    """A server allowing 1 query per 1000 s per key (submits unlimited), and a client."""
    runtime = Runtime.open(
        make_settings(
            tmp_path / "data",
            db_url,
            query_rate_limit_per_second=0.001,
            rate_limit_window_seconds=1000,
        )
    )
    key = new_key(runtime)
    with (
        LiveServer(runtime) as server,
        httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as http,
    ):
        yield runtime, http
    runtime.close()


def test_a_rate_limited_poll_answers_429_and_never_failed(
    limited: tuple[Runtime, httpx.Client],
) -> None:
    runtime, http = limited
    body = {"prompt": "p", "firstImageUrl": "https://example.com/a.png"}
    task_id = http.post(I2V, json=body).json()["taskId"]
    worker = Worker(runtime)
    try:
        assert worker._claim() is not None  # RUNNING, never rendered
    finally:
        worker.fetcher.close()
    first = http.post("/openapi/v2/query", json={"taskId": task_id})
    assert (first.status_code, first.json()["status"]) == (200, "RUNNING")

    refused = http.post("/openapi/v2/query", json={"taskId": task_id})
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 1000
    answer = refused.json()
    assert answer["taskId"] == task_id and answer["status"] is None
    assert answer["errorCode"] == "1003" and answer["errorMessage"].startswith("Rate limit")
    assert "FAILED" not in refused.text
    # The same for the v1 shapes, and for a task id sent as a number.
    as_number = http.post("/openapi/v2/query", json={"taskId": int(task_id)})
    assert (as_number.status_code, as_number.json()["taskId"]) == (429, task_id)
    status = http.post("/task/openapi/status", json={"taskId": task_id})
    assert status.status_code == 429 and "Retry-After" in status.headers
    assert status.json()["code"] == 421 and status.json()["data"] is None
    # Submits have a budget of their own.
    assert http.post(I2V, json=body).status_code == 200
    # And the task itself was never touched.
    with runtime.db.read() as session:
        task = repo.get_task(session, int(task_id))
        assert task is not None and task.status == "RUNNING"
