"""The store raises its own errors, never SQLAlchemy's: conflicts, an unreachable database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from reelgate.core.errors import Conflict, StoreError, StoreUnavailable
from reelgate.runtime import Runtime
from reelgate.service import Service
from reelgate.store import db as db_module
from reelgate.store import repo
from reelgate.store.db import Database
from reelgate.store.tables import ApiKey
from tests.conftest import (
    LiveServer,
    _fresh_postgres_database,
    free_port,
    make_settings,
    new_key,
)

BODY = {"prompt": "street", "firstImageUrl": "https://example.com/a.png", "duration": 3}
MODEL = "kling-video-o3-std/image-to-video"


def test_a_broken_constraint_is_a_conflict(runtime: Runtime, api_key: str) -> None:
    with pytest.raises(Conflict) as caught, runtime.db.write() as session:
        session.execute(update(ApiKey).values(coins=-1))
    assert isinstance(caught.value.__cause__, IntegrityError)
    assert caught.value.code == "1005"
    assert "UPDATE" not in caught.value.message  # the driver's text stays out of the message
    with runtime.db.read() as session:  # and the transaction was rolled back
        found = repo.find_key(session, api_key)
        assert found is not None and found.coins > 0


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_unreachable_database_is_unavailable(backend: str, tmp_path: Path) -> None:
    if backend == "sqlite":
        (tmp_path / "a-directory.db").mkdir()  # SQLite cannot open a directory
        url = f"sqlite:///{tmp_path / 'a-directory.db'}"
    else:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres"
    db = Database(url)
    try:
        for session_of in (db.read, db.write):
            with pytest.raises(StoreUnavailable) as caught, session_of() as session:
                session.execute(text("SELECT 1"))
            assert isinstance(caught.value.__cause__, OperationalError)
            assert caught.value.code == "1010"
        assert db.ping()  # readiness says why, in the driver's words
    finally:
        db.dispose()


def test_a_bad_statement_on_sqlite_is_not_called_unavailable(tmp_path: Path) -> None:
    # Python's sqlite3 reports SQL errors as OperationalError too; retrying them cannot help.
    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        with pytest.raises(StoreError) as caught, db.read() as session:
            session.execute(text("SELECT * FROM no_such_table"))
        assert type(caught.value) is StoreError
        assert db.ping() == ""
    finally:
        db.dispose()


def test_racing_submits_with_one_idempotency_key_answer_the_first_task(
    runtime: Runtime, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = Service(runtime)
    caller = service.authenticate(api_key)
    first = service.submit(caller, MODEL, BODY, idempotency_key="order-1")
    with runtime.db.read() as session:
        coins = repo.key_balance(session, caller.id)

    # The second submit's lookup runs before the first one commits, so it misses; its insert
    # then hits the unique index.
    real_lookup = repo.find_by_idempotency_key
    calls: list[Any] = []

    def lookup_that_misses_once(*args: Any) -> Any:
        calls.append(args)
        return None if len(calls) == 1 else real_lookup(*args)

    monkeypatch.setattr(repo, "find_by_idempotency_key", lookup_that_misses_once)
    second = service.submit(caller, MODEL, BODY, idempotency_key="order-1")
    assert second.id == first.id
    assert len(calls) == 2
    with runtime.db.read() as session:
        assert repo.key_balance(session, caller.id) == coins  # the loser's hold was rolled back


def test_an_outage_answers_a_retryable_5xx_in_the_paths_own_shape(tmp_path: Path) -> None:
    """A database outage is the server failing, not the request: 503 with 1010, which RunningHub
    clients retry (business errors stay at HTTP 200)."""
    db_file = tmp_path / "reelgate.db"
    runtime = Runtime.open(make_settings(tmp_path / "data", f"sqlite:///{db_file}"))
    key = new_key(runtime)
    runtime.db.dispose()
    db_file.unlink()
    db_file.mkdir()  # the same path, now unopenable: every new connection fails
    try:
        with LiveServer(runtime) as server:
            headers = {"Authorization": f"Bearer {key}"}
            v2 = httpx.post(f"{server.url}/openapi/v2/query", json={"taskId": "1"}, headers=headers)
            v1 = httpx.post(
                f"{server.url}/task/openapi/status", json={"apiKey": key, "taskId": "1"}
            )
            ready = httpx.get(f"{server.url}/readyz")
    finally:
        runtime.close()
    assert v2.status_code == 503
    assert (v2.json()["errorCode"], v2.json()["status"]) == ("1010", "FAILED")
    assert v1.status_code == 503 and v1.json()["code"] == 500
    assert ready.status_code == 503


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _fresh_postgres_database()


def _backend_pid(db: Database) -> int:
    with db.read() as session:
        return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(db: Database, pid: int) -> None:
    with db.read() as session:
        session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


@pytest.mark.postgres
def test_a_pooled_connection_that_died_while_idle_is_replaced_unseen(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, killer = Database(postgres_url), Database(postgres_url)
    try:
        dead = _backend_pid(db)
        _terminate(killer, dead)
        monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # it counts as idle
        assert _backend_pid(db) != dead  # no error: pinged, found dead, replaced
    finally:
        db.dispose()
        killer.dispose()


@pytest.mark.postgres
def test_a_connection_used_a_moment_ago_is_not_pinged_and_fails_once(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ping for a connection that was just in use: if it died all the same, that one use is
    answered as an outage (1010, retried by clients) and the pool starts afresh."""
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 3600.0)
    db, killer = Database(postgres_url), Database(postgres_url)
    try:
        dead = _backend_pid(db)
        _terminate(killer, dead)
        with pytest.raises(StoreUnavailable):
            _backend_pid(db)
        assert _backend_pid(db) != dead
    finally:
        db.dispose()
        killer.dispose()
