"""A worker that lost its task (it stalled past its lease, the sweeper queued the task again and
another worker finished it) and then wakes up never touches the result of the claim that
finished it: each claim stores its outputs in a folder of its own, and the late one deletes
what it stored once the store tells it the task is no longer its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reelgate.config import WorkerSettings
from reelgate.core.catalogue import Family
from reelgate.engines.base import (
    Capabilities,
    RenderContext,
    RenderOutput,
    RenderResult,
    RenderSpec,
)
from reelgate.runtime import Runtime
from reelgate.service import Service
from reelgate.storage import LocalStorage
from reelgate.store import repo
from reelgate.store.tables import Task
from reelgate.worker.worker import Worker, sweep
from tests.acceptance.faultkit import body
from tests.conftest import make_settings, new_key

MODEL = "kling-video-o3-std/image-to-video"
LEASE = 0.5


class WrittenEngine:
    """Writes ``content`` as its MP4; with ``hold``, only once the test sets it, and whatever
    the worker is told meanwhile (a render stalled in a library call)."""

    name = "written"
    capabilities = Capabilities(families=frozenset({Family.IMAGE_TO_VIDEO}))

    def __init__(self, content: bytes, *, hold: bool = False) -> None:
        self.content = content
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def ready(self) -> tuple[bool, str]:
        return True, ""

    def render(self, spec: RenderSpec, ctx: RenderContext) -> RenderResult:
        self.started.set()
        assert self.release.wait(60)
        path = ctx.scratch_dir / "out.mp4"
        path.write_bytes(self.content)
        return RenderResult(outputs=(RenderOutput(path, "mp4"),))


@pytest.fixture
def runtime(tmp_path: Path, db_url: str) -> Iterator[Runtime]:
    worker = WorkerSettings(
        lease_seconds=LEASE, heartbeat_seconds=0.1, poll_seconds=0.05, sweep_seconds=0.2
    )
    rt = Runtime.open(make_settings(tmp_path / "data", db_url, worker=worker))
    yield rt
    rt.close()


def stored_files(runtime: Runtime, task_id: int) -> dict[str, bytes]:
    """Every file in the task's folder, by key."""
    storage = runtime.storage
    assert isinstance(storage, LocalStorage)
    folder = storage.root / "results" / str(task_id)
    return {
        path.relative_to(storage.root).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def task(runtime: Runtime, task_id: int) -> Task:
    with runtime.db.read() as session:
        found = repo.get_task(session, task_id)
        assert found is not None
        return found


def test_a_stalled_worker_that_wakes_up_leaves_the_finished_result_alone(
    runtime: Runtime,
) -> None:
    service = Service(runtime)
    task_id = service.submit(service.authenticate(new_key(runtime)), MODEL, body()).id
    stalled = WrittenEngine(b"late attempt " * 100, hold=True)
    late = Worker(runtime, engine=stalled, worker_id="late")
    prompt = Worker(runtime, engine=WrittenEngine(b"finishing attempt " * 100), worker_id="b")

    # The late worker claims the task and stalls in its render: it renews no lease.
    claimed: list[int | None] = []
    first = threading.Thread(target=lambda: claimed.append(late.run_once()), daemon=True)
    first.start()
    try:
        assert stalled.started.wait(30)
        time.sleep(LEASE + 0.2)
        assert sweep(runtime) == 1  # queued again, for the next worker
        assert prompt.run_once() == task_id
        finished = task(runtime, task_id)
        assert (finished.status, finished.attempts) == ("SUCCESS", 2)
        (result,) = finished.results or []
        before = stored_files(runtime, task_id)
        assert list(before) == [result["key"]]
        assert before[result["key"]] == b"finishing attempt " * 100
        # Users see the file under the name it always had.
        assert result["key"].endswith(f"/{task_id}_1.mp4")
    finally:
        stalled.release.set()  # it wakes up, stores its output and tries to finish
        first.join(30)
    assert claimed == [task_id]

    after = task(runtime, task_id)
    assert (after.status, after.results) == ("SUCCESS", finished.results)
    # The finished result is byte for byte what it was, and the late claim's files are gone.
    assert stored_files(runtime, task_id) == before
    answer = b"".join(runtime.storage.read(result["key"]))
    assert answer == b"finishing attempt " * 100
