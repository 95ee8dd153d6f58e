"""Idle workers are woken by the commits that make a task claimable, on SQLite and PostgreSQL.

Workers here poll every 30 s: a task they start within a few seconds was announced to them.
"""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from reelgate.config import Settings, WorkerSettings
from reelgate.core.catalogue import Family
from reelgate.core.status import TaskStatus
from reelgate.engines.base import (
    Capabilities,
    RenderContext,
    RenderOutput,
    RenderResult,
    RenderSpec,
)
from reelgate.runtime import Runtime
from reelgate.samples import sample_image
from reelgate.service import Caller, Service
from reelgate.store import queue
from reelgate.store.wakeup import CHANNEL
from reelgate.worker.worker import Worker
from tests.conftest import make_settings, new_key

POLL_SECONDS = 30.0
#: Far below the poll: only a wake-up explains a start this early.
PROMPTLY = 10.0
I2V = "kling-video-o3-std/image-to-video"


class HeldEngine:
    """Renders until the test lets go of the task (cancelling does not stop it)."""

    name = "held"
    capabilities = Capabilities(families=frozenset({Family.IMAGE_TO_VIDEO}))

    def __init__(self) -> None:
        self.release = threading.Event()

    def ready(self) -> tuple[bool, str]:
        return True, ""

    def render(self, spec: RenderSpec, ctx: RenderContext) -> RenderResult:
        self.release.wait(60)
        path = ctx.scratch_dir / "held.mp4"
        path.write_bytes(b"held")
        return RenderResult(outputs=(RenderOutput(path, "mp4"),))


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    worker = WorkerSettings(
        lease_seconds=30.0, heartbeat_seconds=0.3, poll_seconds=POLL_SECONDS, sweep_seconds=60.0
    )
    return make_settings(tmp_path / "data", db_url, worker=worker)


def image() -> str:
    buffer = io.BytesIO()
    sample_image(320, 320).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


class Workers:
    """Workers running in threads until the test ends."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.engines: list[HeldEngine] = []

    def start(self) -> HeldEngine:
        engine = HeldEngine()
        worker = Worker(self.runtime, engine=engine, concurrency=1)
        thread = threading.Thread(target=worker.run, args=(self.stop,), daemon=True)
        thread.start()
        self.threads.append(thread)
        self.engines.append(engine)
        return engine

    def close(self) -> None:
        self.stop.set()
        for engine in self.engines:
            engine.release.set()
        for thread in self.threads:
            thread.join(30)


@pytest.fixture
def workers(runtime: Runtime) -> Iterator[Workers]:
    running = Workers(runtime)
    yield running
    running.close()


def status(runtime: Runtime, task_id: int) -> TaskStatus | None:
    with runtime.db.read() as session:
        return queue.task_status(session, task_id)


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def submit(service: Service, caller: Caller) -> int:
    return service.submit(caller, I2V, {"prompt": "p", "firstImageUrl": image()}).id


def settle() -> None:
    """Time for a worker that just finished or claimed to go back to its (30 s) wait."""
    time.sleep(0.5)


def idle_worker(runtime: Runtime, workers: Workers, service: Service, caller: Caller) -> None:
    """Start a worker and bring it to its idle wait: one task, run and finished."""
    engine = workers.start()
    first = submit(service, caller)
    assert wait_until(lambda: status(runtime, first) is TaskStatus.RUNNING, 30)
    engine.release.set()
    assert wait_until(lambda: status(runtime, first) is TaskStatus.SUCCESS, 30)
    settle()


def test_a_submit_wakes_an_idle_worker(runtime: Runtime, workers: Workers) -> None:
    service = Service(runtime)
    caller = service.authenticate(new_key(runtime))
    idle_worker(runtime, workers, service, caller)

    task = submit(service, caller)
    assert wait_until(lambda: status(runtime, task) is not TaskStatus.QUEUED, PROMPTLY)


def test_a_freed_concurrency_slot_wakes_a_waiting_worker(
    runtime: Runtime, workers: Workers
) -> None:
    service = Service(runtime)
    caller = service.authenticate(new_key(runtime, concurrency=1))
    busy = workers.start()  # holds the first task, cancelled or not, until the end
    first = submit(service, caller)
    assert wait_until(lambda: status(runtime, first) is TaskStatus.RUNNING, 30)
    workers.start()  # idle: the next task waits for the key's one slot
    second = submit(service, caller)
    settle()
    assert status(runtime, second) is TaskStatus.QUEUED
    if not runtime.db.is_sqlite:
        # A render holds no transaction (nor, so, a row lock): claim and heartbeats commit.
        assert open_transactions(runtime.db.url) == 0

    service.cancel(caller, first)  # RUNNING -> CANCEL frees the slot

    assert wait_until(lambda: status(runtime, second) is TaskStatus.RUNNING, PROMPTLY)
    assert not busy.release.is_set()  # not the busy worker's own end: the cancel woke it


def open_transactions(url: str) -> int:
    """Sessions of this database (other than the asking one) inside a transaction that began
    more than 0.4 s ago: a render's, if one were held (short ones come and go meanwhile)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND pid <> pg_backend_pid()"
                        " AND xact_start < now() - interval '0.4 seconds'"
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()


def listeners(url: str) -> set[int]:
    """Backend pids of this database's sessions listening on the queue's channel."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND query = :listen"
                ),
                {"listen": f"LISTEN {CHANNEL}"},
            )
            return {int(row[0]) for row in rows}
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_the_listener_survives_a_dropped_connection(
    runtime: Runtime, workers: Workers, db_url: str
) -> None:
    service = Service(runtime)
    caller = service.authenticate(new_key(runtime))
    idle_worker(runtime, workers, service, caller)
    (before,) = listeners(db_url)
    admin = create_engine(db_url)
    with admin.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": before})
    admin.dispose()
    assert wait_until(lambda: len(listeners(db_url) - {before}) == 1, 15)
    settle()

    task = submit(service, caller)
    assert wait_until(lambda: status(runtime, task) is not TaskStatus.QUEUED, PROMPTLY)
