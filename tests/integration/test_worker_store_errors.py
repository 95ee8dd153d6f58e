"""A worker that meets a failing database waits the outage out instead of exiting, and never
fails a task for it: the task is left to its lease, queued again by the sweeper, and runs again."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from reelgate.config import WorkerSettings
from reelgate.runtime import Runtime
from reelgate.service import Service
from reelgate.store import queue, repo
from reelgate.store.tables import Task
from reelgate.worker.worker import Worker, sweep
from tests.acceptance.faultkit import body
from tests.conftest import make_settings, new_key

MODEL = "kling-video-o3-std/image-to-video"
LEASE = 0.5


@pytest.fixture
def runtime(tmp_path: Path, db_url: str) -> Iterator[Runtime]:
    settings = make_settings(
        tmp_path / "data",
        db_url,
        preview_long_side=64,
        worker=WorkerSettings(
            lease_seconds=LEASE, heartbeat_seconds=0.1, poll_seconds=0.05, sweep_seconds=0.2
        ),
    )
    rt = Runtime.open(settings)
    yield rt
    rt.close()


def lost_connection() -> OperationalError:
    """What the driver raises when the database went away (the store makes it a 1010)."""
    return OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))


def submit(runtime: Runtime) -> int:
    service = Service(runtime)
    return service.submit(service.authenticate(new_key(runtime)), MODEL, body()).id


def task(runtime: Runtime, task_id: int) -> Task:
    with runtime.db.read() as session:
        found = repo.get_task(session, task_id)
        assert found is not None
        return found


def test_a_worker_waits_out_a_database_that_refuses_its_claims(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_claim = queue.claim_next
    calls: list[None] = []

    def claim_after_an_outage(*args: Any, **kwargs: Any) -> Any:
        calls.append(None)
        if len(calls) <= 5:
            raise lost_connection()
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(queue, "claim_next", claim_after_an_outage)
    task_id = submit(runtime)
    stop = threading.Event()
    worker = threading.Thread(target=Worker(runtime).run, args=(stop,), daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while task(runtime, task_id).status != "SUCCESS":
            assert worker.is_alive(), "the worker stopped at the first failed claim"
            assert time.monotonic() < deadline, task(runtime, task_id).status
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(30)
    assert len(calls) > 5


def test_a_success_the_database_failed_to_record_is_rendered_again_not_failed(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_finish = queue.finish
    calls: list[None] = []

    def finish_after_an_outage(*args: Any, **kwargs: Any) -> Any:
        calls.append(None)
        if len(calls) == 1:
            raise lost_connection()
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(queue, "finish", finish_after_an_outage)
    task_id = submit(runtime)
    worker = Worker(runtime)
    assert worker.run_once() == task_id
    first = task(runtime, task_id)
    assert (first.status, first.error_code) == ("RUNNING", "")  # not FAILED with 1010
    time.sleep(LEASE + 0.1)
    assert sweep(runtime) == 1
    assert worker.run_once() == task_id
    done = task(runtime, task_id)
    assert (done.status, done.attempts) == ("SUCCESS", 2)
