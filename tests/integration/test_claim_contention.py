"""Claims on PostgreSQL while other transactions hold a key's row: a submit's coins, a claim,
a finish, an operator cancelling.

A claim locks its task with ``SKIP LOCKED`` but waits for the key's row: skipping it left
workers idle while one key's tasks were being submitted, since every submit holds that row
until it commits. These tests hold the row from a second connection, as those transactions do.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from reelgate.core.status import TaskStatus
from reelgate.runtime import Runtime
from reelgate.store import queue
from reelgate.store.tables import ApiKey, TaskEvent
from reelgate.store.wakeup import PostgresListener
from reelgate.worker.worker import Worker
from tests.conftest import _fresh_postgres_database, make_settings, new_key
from tests.integration.test_queue import claim, status_of, submit

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_runtime(tmp_path: Path) -> Iterator[Runtime]:
    for url in _fresh_postgres_database():
        runtime = Runtime.open(make_settings(tmp_path, url))
        try:
            yield runtime
        finally:
            runtime.close()


def _raw(runtime: Runtime) -> psycopg.Connection[Any]:
    """A connection of its own, outside reelgate's pool: another process's transaction."""
    url = make_url(runtime.db.url)
    return psycopg.connect(
        host=url.host, port=url.port, user=url.username, dbname=url.database, autocommit=False
    )


def _key_id(runtime: Runtime, task_id: int) -> int:
    return status_of(runtime, task_id).api_key_id


def _running_tasks(runtime: Runtime, key_id: int) -> int:
    with runtime.db.read() as session:
        key = session.get(ApiKey, key_id)
        assert key is not None
        return key.running_tasks


def _waiting_for_a_lock(runtime: Runtime, *, count: int = 1, timeout: float = 10.0) -> None:
    """Until ``count`` sessions of the test database wait for a row lock."""
    deadline = time.monotonic() + timeout
    with _raw(runtime) as watcher:
        watcher.autocommit = True
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            if waiting is not None and waiting[0] >= count:
                return
            time.sleep(0.01)
    raise AssertionError("no session came to wait for a lock")


def _claim_in_thread(runtime: Runtime, worker: str) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(claim(runtime.db, worker))
        except Exception as error:
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_claim_waits_for_a_key_row_held_by_a_submit_instead_of_skipping_its_tasks(
    pg_runtime: Runtime,
) -> None:
    api_key = new_key(pg_runtime)
    task_id = submit(pg_runtime, api_key)
    with _raw(pg_runtime) as other:
        # What a submit of the same key does until it commits: its coins are taken.
        other.execute(
            "UPDATE api_keys SET coins = coins - 1 WHERE id = %s", (_key_id(pg_runtime, task_id),)
        )
        thread, outcome = _claim_in_thread(pg_runtime, "w1")
        _waiting_for_a_lock(pg_runtime)
        assert thread.is_alive() and outcome == []
        other.commit()
    thread.join(10)
    assert [c.id for c in outcome] == [task_id]
    assert status_of(pg_runtime, task_id).status == TaskStatus.RUNNING.value


def test_a_claim_that_waited_still_respects_the_keys_concurrency(pg_runtime: Runtime) -> None:
    api_key = new_key(pg_runtime, concurrency=1)
    first, second = submit(pg_runtime, api_key), submit(pg_runtime, api_key)
    key_id = _key_id(pg_runtime, first)
    with _raw(pg_runtime) as other:
        # Another worker's claim of the key's one slot, not yet committed when ours looks.
        other.execute(
            "UPDATE tasks SET status = 'RUNNING', worker_id = 'w0', attempts = 1 WHERE id = %s",
            (first,),
        )
        other.execute(
            "UPDATE api_keys SET running_tasks = running_tasks + 1 WHERE id = %s", (key_id,)
        )
        thread, outcome = _claim_in_thread(pg_runtime, "w1")
        _waiting_for_a_lock(pg_runtime)
        other.commit()
    thread.join(10)
    assert outcome == [None]  # the slot was taken while it waited
    assert status_of(pg_runtime, second).status == TaskStatus.QUEUED.value
    assert status_of(pg_runtime, second).attempts == 0
    assert _running_tasks(pg_runtime, key_id) == 1
    with pg_runtime.db.read() as session:
        events = session.execute(select(TaskEvent.to_status).where(TaskEvent.task_id == second))
        assert list(events.scalars()) == ["QUEUED"]


def test_a_claim_of_a_disabled_keys_task_finds_nothing(pg_runtime: Runtime) -> None:
    api_key = new_key(pg_runtime)
    task_id = submit(pg_runtime, api_key)
    key_id = _key_id(pg_runtime, task_id)
    with _raw(pg_runtime) as other:
        other.execute("UPDATE api_keys SET disabled = true WHERE id = %s", (key_id,))
        thread, outcome = _claim_in_thread(pg_runtime, "w1")
        _waiting_for_a_lock(pg_runtime)
        other.commit()
    thread.join(10)
    assert outcome == [None]
    assert status_of(pg_runtime, task_id).status == TaskStatus.QUEUED.value
    assert _running_tasks(pg_runtime, key_id) == 0


def test_a_worker_whose_claim_loses_a_deadlock_to_an_operator_carries_on(
    pg_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator cancelling a key's tasks holds the key's row and then waits for a task's;
    a claim holding that task and waiting for the key's row closes the circle. PostgreSQL ends
    one of the two; when it is the claim, the worker claims nothing this time, quietly."""
    caplog.set_level(logging.INFO, logger="reelgate.worker")
    api_key = new_key(pg_runtime)
    task_id = submit(pg_runtime, api_key)
    key_id = _key_id(pg_runtime, task_id)
    worker = Worker(pg_runtime, worker_id="w1")
    outcome: list[Any] = []
    with _raw(pg_runtime) as operator:
        # The operator's side waits longer before it looks for a deadlock, so that
        # PostgreSQL ends the claim (the side that checks first ends itself).
        operator.execute("SET deadlock_timeout = '20s'")
        operator.execute("UPDATE api_keys SET disabled = true WHERE id = %s", (key_id,))
        thread = threading.Thread(target=lambda: outcome.append(worker._claim()))
        thread.start()
        _waiting_for_a_lock(pg_runtime)
        operator.execute(
            "UPDATE tasks SET status = 'CANCEL' WHERE id = %s AND status = 'QUEUED'", (task_id,)
        )
        operator.commit()
    thread.join(30)
    assert outcome == [None]
    assert "lost a lock race" in caplog.text
    assert not worker._store_down  # not taken for an outage
    assert status_of(pg_runtime, task_id).status == TaskStatus.CANCEL.value
    assert _running_tasks(pg_runtime, key_id) == 0
    worker.fetcher.close()


def test_announcements_wake_workers_only_when_a_task_may_have_waited(pg_runtime: Runtime) -> None:
    """A finished task frees a slot of its key; other workers are told only when the key had
    none free (its tasks may have waited), since the finishing worker claims again anyway."""
    roomy = new_key(pg_runtime, concurrency=3)
    full = new_key(pg_runtime, concurrency=1)
    heard = threading.Event()
    listener = pg_runtime.db.listen_for_tasks(heard)
    assert isinstance(listener, PostgresListener)
    assert listener.listening.wait(5)
    try:
        for api_key, told in ((roomy, False), (full, True)):
            task_id = submit(pg_runtime, api_key)
            claimed = claim(pg_runtime.db, "w")
            assert claimed is not None and claimed.id == task_id
            time.sleep(0.3)  # the submit's own announcement
            heard.clear()
            with pg_runtime.db.write() as session:
                assert queue.finish(session, task_id, worker_id="w", results=[])
            assert heard.wait(1.0) is told
    finally:
        listener.close()
