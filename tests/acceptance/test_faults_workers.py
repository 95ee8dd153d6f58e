"""Worker processes killed with SIGKILL at random moments under a stream of tasks (PostgreSQL):
every task still ends SUCCESS exactly once, with one decodable result, and the books balance."""

from __future__ import annotations

import datetime as dt
import random
import signal
import subprocess
import time
from pathlib import Path

import av

from tests.acceptance.faultkit import (
    FAST,
    I2V,
    assert_accounts,
    assert_lifecycles,
    body,
    busy_pids,
    key_coins,
    read_books,
    spawn_logged,
    unfinished,
)
from tests.acceptance.test_processes import Cluster

#: The kills' draws (the pauses between them, the victims) come from this seed, so a run can
#: be replayed; which workers are running a task at each kill is up to the machine.
SEED = 20261111
TASKS = 16
WORKERS = 3
#: After this many kills the workers are left alone to finish what remains.
MAX_KILLS = 8
#: A kill costs at most one attempt of one task (each worker runs one task at a time), so with
#: more attempts than kills no task can run out of them through the kills alone; the margin
#: covers a lease lost to a starved machine (a live worker whose heartbeat came too late).
MAX_ATTEMPTS = MAX_KILLS + 3


def test_workers_killed_at_random_never_lose_or_repeat_a_task(
    tmp_path: Path, postgres_url: str
) -> None:
    cluster = Cluster(tmp_path / "data", postgres_url)
    # Renders of about a second (10 s of video at 256 px): long enough that kills land in them.
    cluster.env.update(
        FAST,
        REELGATE_PREVIEW_LONG_SIDE="256",
        REELGATE_WORKER__MAX_ATTEMPTS=str(MAX_ATTEMPTS),
    )
    logs = tmp_path / "logs"
    rng = random.Random(SEED)
    spawned = 0

    def worker() -> subprocess.Popen[bytes]:
        nonlocal spawned
        spawned += 1
        return spawn_logged(cluster, logs / f"worker-{spawned}.log", "worker")

    cluster.start_server()
    try:
        start_coins = key_coins(postgres_url)
        workers = [worker() for _ in range(WORKERS)]
        task_ids: list[str] = []
        kills = 0
        next_kill = time.monotonic() + rng.uniform(1.0, 2.0)
        deadline = time.monotonic() + 150
        while len(task_ids) < TASKS or unfinished(postgres_url):
            assert time.monotonic() < deadline, f"tasks still unfinished; logs in {logs}"
            if len(task_ids) < TASKS:  # a task every ~0.2 s, while the kills go on
                shot = body(f"shot {len(task_ids)}", duration=10)
                answer = cluster.http.post(I2V, json=shot).json()
                assert answer["errorCode"] == "", answer
                task_ids.append(answer["taskId"])
            # The victim is drawn among the workers running a task, so that every kill lands
            # somewhere in a task's run (fetching, rendering, storing, recording the success),
            # whatever the machine's speed; an idle or starting worker would lose nothing.
            busy = busy_pids(postgres_url)
            running = [n for n, proc in enumerate(workers) if proc.pid in busy]
            if kills < MAX_KILLS and time.monotonic() >= next_kill and running:
                victim = rng.choice(running)
                workers[victim].send_signal(signal.SIGKILL)
                workers[victim].wait(10)
                workers[victim] = worker()
                kills += 1
                next_kill = time.monotonic() + rng.uniform(1.0, 2.0)
            time.sleep(0.2)
    finally:
        cluster.stop()

    books = read_books(postgres_url)
    assert sorted(books.tasks) == sorted(int(t) for t in task_ids)
    statuses = {t.id: (t.status, t.error_code, t.attempts) for t in books.tasks.values()}
    assert all(status == "SUCCESS" for status, _, _ in statuses.values()), statuses
    assert_lifecycles(books)
    assert_accounts(books, start_coins)
    # Kills cost attempts (not always one each: a victim may finish its task as it is chosen).
    assert sum(t.attempts for t in books.tasks.values()) > TASKS

    storage = tmp_path / "data" / "storage"
    for task in books.tasks.values():
        assert task.results is not None
        stored = [storage / result["key"] for result in task.results]
        assert len(stored) == 1 and stored[0].name == f"{task.id}_1.mp4"
        # Written once: moved into place before SUCCESS was committed, never replaced after it
        # (a rename sets the file's ctime; its mtime is the render's).
        assert task.finished_at is not None
        written = dt.datetime.fromtimestamp(stored[0].stat().st_ctime, dt.UTC)
        assert written <= task.finished_at.replace(tzinfo=dt.UTC), task.id
        assert [p.name for p in stored[0].parent.iterdir() if p.suffix == ".mp4"] == [
            stored[0].name
        ]
    for task in list(books.tasks.values())[:: TASKS // 3]:
        assert task.results is not None
        with av.open(str(storage / task.results[0]["key"]), mode="r") as container:
            frames = sum(1 for _ in container.decode(video=0))
        assert frames > 0
