"""The queue's database contract on SQLite and PostgreSQL: claims, limits, leases, guards."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from reelgate.core.errors import FileProcessingFailed, GenerationFailed, InvalidTransition
from reelgate.core.status import TaskStatus
from reelgate.runtime import Runtime
from reelgate.service import Caller, Service
from reelgate.store import queue, repo
from reelgate.store.db import Database
from reelgate.store.tables import Task, TaskEvent
from reelgate.worker.worker import sweep
from tests.conftest import new_key

BODY = {"prompt": "street", "firstImageUrl": "https://example.com/a.png", "duration": 3}


def caller_for(service: Service, api_key: str) -> Caller:
    return service.authenticate(api_key)


def submit(runtime: Runtime, api_key: str, **body: Any) -> int:
    service = Service(runtime)
    task = service.submit(
        caller_for(service, api_key), "kling-video-o3-std/image-to-video", {**BODY, **body}
    )
    return task.id


def status_of(runtime: Runtime, task_id: int) -> Task:
    with runtime.db.read() as session:
        task = repo.get_task(session, task_id)
        assert task is not None
        return task


def claim(db: Database, worker: str, lease: float = 30.0) -> queue.ClaimedTask | None:
    with db.write() as session:
        return queue.claim_next(session, worker, lease)


def test_two_workers_racing_for_one_task_claim_it_once(runtime: Runtime, api_key: str) -> None:
    # Each worker has its own engine (connection pool), as separate processes would.
    others = [Database(runtime.db.url), Database(runtime.db.url)]
    try:
        for _ in range(10):
            task_id = submit(runtime, api_key)
            barrier = threading.Barrier(2)
            won: list[Any] = []

            def race(
                db: Database, name: str, barrier: threading.Barrier = barrier, won: list[Any] = won
            ) -> None:
                barrier.wait()
                won.append((name, claim(db, name)))

            threads = [
                threading.Thread(target=race, args=(db, f"w{i}")) for i, db in enumerate(others)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            claimed = [(name, c) for name, c in won if c is not None]
            assert [c.id for _, c in claimed] == [task_id]
            assert status_of(runtime, task_id).attempts == 1
            with runtime.db.write() as session:
                assert queue.finish(session, task_id, worker_id=claimed[0][0], results=[])
    finally:
        for db in others:
            db.dispose()


def test_claims_respect_each_keys_concurrency(runtime: Runtime) -> None:
    one = new_key(runtime, concurrency=1)
    two = new_key(runtime, concurrency=2)
    a1, a2 = submit(runtime, one), submit(runtime, one)
    b1, b2, b3 = submit(runtime, two), submit(runtime, two), submit(runtime, two)
    claimed = []
    while (c := claim(runtime.db, "w")) is not None:
        claimed.append(c.id)
    assert claimed == [a1, b1, b2]  # oldest first, never past a key's limit
    with runtime.db.write() as session:
        queue.finish(session, a1, worker_id="w", results=[])
    c = claim(runtime.db, "w")
    assert c is not None and c.id == a2
    assert claim(runtime.db, "w") is None
    assert status_of(runtime, b3).status == "QUEUED"


def test_concurrency_holds_under_parallel_claims(runtime: Runtime) -> None:
    key = new_key(runtime, concurrency=2)
    for _ in range(6):
        submit(runtime, key)
    dbs = [Database(runtime.db.url) for _ in range(4)]
    barrier = threading.Barrier(4)
    got: list[Any] = []
    try:

        def grab(db: Database, name: str) -> None:
            barrier.wait()
            for _ in range(3):
                got.append(claim(db, name))

        threads = [threading.Thread(target=grab, args=(db, f"w{i}")) for i, db in enumerate(dbs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for db in dbs:
            db.dispose()
    assert len([c for c in got if c is not None]) == 2


def test_a_late_worker_cannot_overwrite_a_terminal_state(runtime: Runtime, api_key: str) -> None:
    task_id = submit(runtime, api_key)
    assert claim(runtime.db, "slow") is not None
    with runtime.db.write() as session:
        assert queue.cancel(session, task_id, expected=TaskStatus.RUNNING, actor="api")
    with runtime.db.write() as session:
        assert queue.finish(session, task_id, worker_id="slow", results=[]) is None
        assert queue.fail(session, task_id, worker_id="slow", error=GenerationFailed()) is None
        assert queue.hand_back(session, task_id, worker_id="slow") is None
    assert status_of(runtime, task_id).status == "CANCEL"
    with pytest.raises(InvalidTransition), runtime.db.write() as session:
        queue.cancel(session, task_id, expected=TaskStatus.CANCEL, actor="x")


def test_worker_verbs_only_match_the_tasks_own_worker(runtime: Runtime, api_key: str) -> None:
    task_id = submit(runtime, api_key)
    assert claim(runtime.db, "owner") is not None
    with runtime.db.write() as session:
        assert queue.finish(session, task_id, worker_id="other", results=[]) is None
        assert queue.fail(session, task_id, worker_id="other", error=GenerationFailed()) is None
        assert queue.hand_back(session, task_id, worker_id="other") is None
    assert status_of(runtime, task_id).status == "RUNNING"
    with runtime.db.write() as session:
        assert queue.hand_back(session, task_id, worker_id="owner") is not None
    task = status_of(runtime, task_id)
    # Handing back at shutdown does not count as an attempt.
    assert (task.status, task.worker_id, task.attempts) == ("QUEUED", None, 0)


def test_every_transition_writes_an_event(runtime: Runtime, api_key: str) -> None:
    task_id = submit(runtime, api_key)
    claim(runtime.db, "w")
    with runtime.db.write() as session:
        queue.fail(session, task_id, worker_id="w", error=FileProcessingFailed("bad file"))
    with runtime.db.read() as session:
        events = session.query(TaskEvent).filter_by(task_id=task_id).order_by(TaskEvent.id).all()
        trail = [(e.from_status, e.to_status, e.actor) for e in events]
    assert trail == [
        (None, "QUEUED", "api"),
        ("QUEUED", "RUNNING", "w"),
        ("RUNNING", "FAILED", "w"),
    ]
    task = status_of(runtime, task_id)
    assert (task.error_code, task.error_message) == (
        "1013",
        FileProcessingFailed("bad file").message,
    )


def test_failed_and_cancelled_tasks_refund_and_success_keeps_the_price(runtime: Runtime) -> None:
    key = new_key(runtime, coins=10_000, concurrency=5)

    def balance() -> int:
        with runtime.db.read() as session:
            found = repo.find_key(session, key)
            assert found is not None
            return found.coins

    ok, bad = submit(runtime, key), submit(runtime, key)
    assert balance() == 10_000 - 2 * 3 * 69
    claim(runtime.db, "w")
    claim(runtime.db, "w")
    with runtime.db.write() as session:
        queue.finish(session, ok, worker_id="w", results=[])
        queue.fail(session, bad, worker_id="w", error=GenerationFailed())
    assert balance() == 10_000 - 3 * 69
    assert status_of(runtime, ok).consumed_coins == 207
    assert status_of(runtime, bad).consumed_coins == 0


def test_sweeper_requeues_expired_leases_then_fails_with_1006(
    runtime: Runtime, api_key: str
) -> None:
    task_id = submit(runtime, api_key)
    for attempt in range(1, runtime.settings.worker.max_attempts + 1):
        claimed = claim(runtime.db, f"dead-{attempt}", lease=0.05)
        assert claimed is not None and claimed.attempts == attempt
        time.sleep(0.1)
        assert sweep(runtime) == 1
    task = status_of(runtime, task_id)
    assert task.status == "FAILED"
    assert task.error_code == "1006"
    assert "attempt 3 of 3" in task.error_message
    assert sweep(runtime) == 0


def test_a_renewed_lease_is_not_swept(runtime: Runtime, api_key: str) -> None:
    task_id = submit(runtime, api_key)
    claim(runtime.db, "alive", lease=0.2)
    for _ in range(4):
        time.sleep(0.1)
        with runtime.db.write() as session:
            assert queue.renew_lease(session, task_id, "alive", 0.2, 0.5)
        sweep(runtime)
    task = status_of(runtime, task_id)
    assert (task.status, task.worker_id, task.progress) == ("RUNNING", "alive", 0.5)
    with runtime.db.write() as session:
        assert not queue.renew_lease(session, task_id, "someone-else", 0.2, None)


def test_sweeper_forgets_workers_that_went_silent(runtime: Runtime) -> None:
    from datetime import timedelta

    from sqlalchemy import select, update

    from reelgate.store.tables import WorkerRow, utcnow

    with runtime.db.write() as session:
        queue.register_worker(session, "gone", "host", 1)
        queue.register_worker(session, "alive", "host", 2)
        session.execute(
            update(WorkerRow)
            .where(WorkerRow.id == "gone")
            .values(last_seen_at=utcnow() - timedelta(hours=1))
        )
    sweep(runtime)
    with runtime.db.read() as session:
        assert list(session.execute(select(WorkerRow.id)).scalars()) == ["alive"]
