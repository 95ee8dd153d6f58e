"""What the fault tests share: small fast renders for real ``reelgate`` processes on PostgreSQL,
and the books every fault must leave balanced, read straight from the database: each task's
event log a valid path of the lifecycle, the key's running counter back to 0, its coins exact."""

from __future__ import annotations

import base64
import functools
import io
import itertools
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from reelgate.core.status import ALLOWED_TRANSITIONS, TaskStatus
from reelgate.samples import sample_image
from reelgate.store.db import Database
from reelgate.store.tables import ApiKey, Task, TaskEvent
from tests.acceptance.test_processes import Cluster

I2V = "/openapi/v2/kling-video-o3-std/image-to-video"

#: Renders of a few hundred milliseconds, no rate limits in the way of a burst, and a key that
#: may run a task on every worker at once.
FAST = {
    "REELGATE_PREVIEW_LONG_SIDE": "64",
    "REELGATE_RATE_LIMIT_PER_SECOND": "0",
    "REELGATE_QUERY_RATE_LIMIT_PER_SECOND": "0",
    "REELGATE_DEFAULT_KEY_CONCURRENCY": "8",
}

ENDED = {TaskStatus.SUCCESS.value, TaskStatus.FAILED.value, TaskStatus.CANCEL.value}


def spawn_logged(cluster: Cluster, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """``Cluster.spawn``, with the process's log appended to ``log`` (read when a test fails)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reelgate", *args],
            env=cluster.env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    cluster.procs.append(proc)
    return proc


@functools.cache
def image_uri() -> str:
    buffer = io.BytesIO()
    sample_image(320, 320).save(buffer, format="PNG")  # the smallest side inputs may have
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def body(prompt: str = "a short pan", duration: int = 3) -> dict[str, Any]:
    return {"prompt": prompt, "firstImageUrl": image_uri(), "duration": duration, "sound": False}


@dataclass(frozen=True)
class Books:
    """Every task, every event and the one key, as the database holds them."""

    tasks: dict[int, Task]
    events: dict[int, list[TaskEvent]]
    key: ApiKey


def read_books(url: str) -> Books:
    db = Database(url)
    try:
        with db.read() as session:
            tasks = {t.id: t for t in session.execute(select(Task)).scalars()}
            events: dict[int, list[TaskEvent]] = defaultdict(list)
            for event in session.execute(select(TaskEvent).order_by(TaskEvent.id)).scalars():
                events[event.task_id].append(event)
            (key,) = session.execute(select(ApiKey)).scalars()
            return Books(tasks, dict(events), key)
    finally:
        db.dispose()


def key_coins(url: str) -> int:
    return read_books(url).key.coins


def unfinished(url: str) -> int:
    """Tasks not ended yet (QUEUED or RUNNING)."""
    return sum(task.status not in ENDED for task in read_books(url).tasks.values())


def busy_pids(url: str) -> set[int]:
    """Process ids of the workers that hold a RUNNING task (worker ids are ``host:pid:random``)."""
    db = Database(url)
    try:
        with db.read() as session:
            holders = session.execute(
                select(Task.worker_id).where(Task.status == TaskStatus.RUNNING.value)
            ).scalars()
            return {int(holder.split(":")[-2]) for holder in holders if holder}
    finally:
        db.dispose()


def assert_lifecycles(books: Books) -> None:
    """Each task's events form one path of ``ALLOWED_TRANSITIONS`` from its submit to the status
    it has now, with one claim per attempt, and an ended task ends exactly once."""
    assert set(books.events) == set(books.tasks), "tasks and event logs differ"
    for task_id, task in books.tasks.items():
        path = [(e.from_status, e.to_status) for e in books.events[task_id]]
        assert path[0] == (None, TaskStatus.QUEUED.value), f"task {task_id} began {path}"
        for (_, before), (after_from, after_to) in itertools.pairwise(path):
            assert after_from == before, f"task {task_id}: the log skips a status: {path}"
            move = (TaskStatus(after_from), TaskStatus(after_to))
            assert move in ALLOWED_TRANSITIONS, f"task {task_id}: {move} in {path}"
        assert path[-1][1] == task.status, (task_id, task.status, path)
        assert sum(to in ENDED for _, to in path) == (task.status in ENDED), (task_id, path)
        claims = sum(move == ("QUEUED", "RUNNING") for move in path)
        # A worker that hands a task back at shutdown gives its attempt back too.
        handed_back = sum(e.detail.startswith("handed back") for e in books.events[task_id])
        assert claims - handed_back == task.attempts, (task_id, task.attempts, path)


def assert_accounts(books: Books, start_coins: int) -> None:
    """Nothing counted as running, and every coin accounted for: held by a task that has not
    ended, kept by a task that succeeded, or back on the key."""
    # (This module's asserts are not rewritten by pytest: each one says what it compared.)
    assert books.key.running_tasks == 0, f"running_tasks is {books.key.running_tasks}"
    held = sum(t.reserved_coins for t in books.tasks.values() if t.status not in ENDED)
    kept = sum(t.consumed_coins or 0 for t in books.tasks.values() if t.status == "SUCCESS")
    expected = start_coins - held - kept
    assert books.key.coins == expected, (
        f"the key has {books.key.coins} coins, not {start_coins} - {held} held - {kept} kept"
    )
