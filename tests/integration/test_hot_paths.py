"""The hot paths stay exact while they got cheaper: a key is read afresh by every request even
when it was recognised a moment ago, a refused query still counts against the limit, requests
are timed by route, SQLite connections are reused, and a request's steps share one
transaction."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, text

from reelgate.config import Settings
from reelgate.core.errors import StoreError
from reelgate.runtime import Runtime
from reelgate.service import Service
from reelgate.store.db import Database
from tests.conftest import LiveServer, make_settings

I2V = "/openapi/v2/kling-video-o3-pro/image-to-video"
QUERY = "/openapi/v2/query"
BODY = {"prompt": "a lantern street", "firstImageUrl": "https://example.com/a.png", "duration": 5}


def test_a_key_disabled_after_it_was_recognised_is_refused_at_once(
    live_server: LiveServer, http: httpx.Client, runtime: Runtime, api_key: str
) -> None:
    task_id = http.post(I2V, json=BODY).json()["taskId"]
    assert http.post(QUERY, json={"taskId": task_id}).json()["status"] == "QUEUED"
    app: Any = live_server.server.config.app
    assert app.state.service.recognised(api_key)  # the early check would let it pass

    Service(runtime).disable_key(api_key)

    refused = http.post(QUERY, json={"taskId": task_id}).json()
    # As a key refused before its body is read: 1002, naming no task.
    assert (refused["errorCode"], refused["taskId"]) == ("1002", "")
    assert http.post(I2V, json=BODY).json()["errorCode"] == "1002"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    # Three queries per key over a window far longer than the test.
    return make_settings(
        tmp_path / "data",
        db_url,
        rate_limit_window_seconds=1000,
        query_rate_limit_per_second=0.003,
    )


def test_queries_that_find_no_task_count_against_the_limit(http: httpx.Client) -> None:
    missing = {"taskId": "1234567890123456789"}
    assert [http.post(QUERY, json=missing).json()["errorCode"] for _ in range(3)] == ["1004"] * 3
    limited = http.post(QUERY, json=missing)
    assert limited.status_code == 429
    assert limited.json()["taskId"] == "1234567890123456789"


def samples(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(httpx.get(url + "/metrics").text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            found.setdefault(sample.name, {})[labels] = sample.value
    return found


def test_requests_are_timed_by_route_template_and_method(
    live_server: LiveServer, http: httpx.Client
) -> None:
    task_id = http.post(I2V, json=BODY).json()["taskId"]
    for _ in range(2):
        assert http.post(QUERY, json={"taskId": task_id}).status_code == 200
    assert http.get(f"/no/such/{task_id}").status_code == 404
    refused = http.post(QUERY, content=b"x" * 2_000_000)  # over the body cap: BodyCap answers
    for answer in (refused, http.get("/healthz")):
        assert answer.headers["X-Reelgate-Version"]

    counts = samples(live_server.url)["reelgate_http_request_duration_seconds_count"]
    assert counts[(("method", "POST"), ("route", QUERY))] == 2
    assert counts[(("method", "POST"), ("route", I2V))] == 1
    assert counts[(("method", "GET"), ("route", "unmatched"))] == 1
    # Refused by its declared length before any route was matched.
    assert counts[(("method", "POST"), ("route", "unmatched"))] == 1
    assert not any(task_id in value for labels in counts for _, value in labels)
    processes = samples(live_server.url)["reelgate_api_process"]
    assert processes == {(("pid", str(os.getpid())),): 1.0}


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'pool.db'}")
    yield db
    db.dispose()


def test_sqlite_connections_are_kept_for_the_threads_that_use_them(sqlite_db: Database) -> None:
    opened: list[object] = []
    event.listen(sqlite_db.engine, "connect", lambda *_: opened.append(None))

    def read(_: int) -> None:
        with sqlite_db.read() as session:
            session.execute(text("SELECT 1"))

    with ThreadPoolExecutor(16) as threads:
        for _ in range(20):
            list(threads.map(read, range(64)))
    assert len(opened) <= 16


def test_a_transaction_is_joined_by_the_steps_inside_it(sqlite_db: Database) -> None:
    with sqlite_db.transaction(write=False) as outer:
        with sqlite_db.read() as inner:
            assert inner is outer
        with pytest.raises(StoreError), sqlite_db.write():
            pass
        with pytest.raises(StoreError), sqlite_db.transaction(write=True):
            pass
    with sqlite_db.transaction(write=True) as outer, sqlite_db.write() as inner:
        assert inner is outer
        inner.execute(text("CREATE TABLE t (n INTEGER)"))
    with sqlite_db.read() as session:  # committed once, at the end; and no longer joined
        assert session is not outer
        assert session.execute(text("SELECT count(*) FROM t")).scalar_one() == 0
