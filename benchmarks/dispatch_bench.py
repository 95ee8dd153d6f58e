"""Dispatch latency: from a submit to its task being RUNNING, with an idle worker waiting.

For each database (the embedded SQLite default and PostgreSQL in a scratch database) one
worker process runs ``Worker`` (concurrency 1, reelgate's default settings) with the no-op
engine. Tasks are submitted through the service layer (``Service.submit``), one at a time:
each waits until the previous task is SUCCESS, so the worker is idle, plus a random pause of
up to ``--spread`` seconds, so submits land anywhere in the worker's polling cycle. The
latency is read from the database afterwards: the task's ``started_at`` (stamped by the
worker's claim) minus its ``created_at`` (stamped by the submit), both from the same host
clock. No polling by the benchmark enters the figure.

The two databases are measured side by side: their workers run at the same time and submits
alternate between them, so both see the same host load.

    PYTHONPATH=. python benchmarks/dispatch_bench.py
    PYTHONPATH=. python benchmarks/dispatch_bench.py --submits 200 --poll 0.05
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import select, text

from benchmarks._common import (
    DEFAULT_POSTGRES,
    Reelgate,
    host_line,
    loadavg,
    percentile,
    run_reelgate_worker,
    scratch_postgres,
    spawn,
    stop,
    table,
    this_script,
)
from reelgate.config import WorkerSettings
from reelgate.store.tables import Task

DATABASES = ("sqlite", "postgres")


def _wait_finished(rg: Reelgate, task_id: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with rg.service.db.read() as session:
            status = session.execute(
                text("SELECT status FROM tasks WHERE id = :id"), {"id": task_id}
            ).scalar_one()
        if status == "SUCCESS":
            return
        if status not in ("QUEUED", "RUNNING") or time.monotonic() > deadline:
            raise SystemExit(f"task {task_id} is {status}")
        time.sleep(0.002)


def _latencies_ms(rg: Reelgate, task_ids: list[int]) -> list[float]:
    """``started_at - created_at`` of each task, in ms."""
    with rg.service.db.read() as session:
        rows = session.execute(
            select(Task.id, Task.created_at, Task.started_at).where(Task.id.in_(task_ids))
        ).all()
    stamps = {row.id: row.started_at - row.created_at for row in rows}
    return [stamps[t].total_seconds() * 1000 for t in task_ids]


def _poll_text(poll: float | None) -> str:
    return f"default ({WorkerSettings().poll_seconds} s)" if poll is None else f"{poll} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", nargs="*", default=list(DATABASES), choices=DATABASES)
    parser.add_argument("--submits", type=int, default=200, help="per database (default 200)")
    parser.add_argument(
        "--spread",
        type=float,
        help="largest random pause before a submit, s (default: 1.25 poll cycles)",
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed submits first")
    parser.add_argument(
        "--poll",
        type=float,
        default=None,
        help="the worker's REELGATE_WORKER__POLL_SECONDS (default: reelgate's, 0.5)",
    )
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="PostgreSQL server URL")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random pauses")
    parser.add_argument("--reelgate-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reelgate_worker:
        run_reelgate_worker(int(args.reelgate_worker))
        return

    if args.spread is None:
        args.spread = 1.25 * (WorkerSettings().poll_seconds if args.poll is None else args.poll)
    print(host_line())
    print(
        f"{args.submits} submits per database, one idle worker (concurrency 1), poll "
        f"{_poll_text(args.poll)}, random pause up to {args.spread} s before each submit"
    )
    random.seed(args.seed)
    with contextlib.ExitStack() as stack:
        setups: dict[str, Reelgate] = {}
        for database in args.databases:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dispatch-")))
            if database == "postgres":
                url = stack.enter_context(scratch_postgres(args.postgres))
            else:
                url = f"sqlite:///{tmp / 'reelgate.db'}"
            rg = stack.enter_context(Reelgate.open(tmp / "data", url))
            env = dict(rg.env)
            if args.poll is not None:
                env["REELGATE_WORKER__POLL_SECONDS"] = str(args.poll)
            procs = [spawn(this_script("reelgate-worker", "1"), env)]
            stack.callback(stop, procs)
            setups[database] = rg
        for rg in setups.values():
            deadline = time.monotonic() + 60
            while rg.workers_registered() < 1:
                if time.monotonic() > deadline:
                    raise SystemExit("the worker did not start")
                time.sleep(0.05)
            for _ in range(args.warmup):
                _wait_finished(rg, rg.submit())
        task_ids: dict[str, list[int]] = {d: [] for d in setups}
        loads = [loadavg()]
        started = time.monotonic()
        for n in range(args.submits):
            for database, rg in setups.items():
                time.sleep(random.uniform(0, args.spread))
                task_id = rg.submit()
                _wait_finished(rg, task_id)
                task_ids[database].append(task_id)
            if n % 50 == 49:
                loads.append(loadavg())
                print(f"  {n + 1} submits each, {time.monotonic() - started:.0f} s", flush=True)
        loads.append(loadavg())
        rows = []
        for database, rg in setups.items():
            ms = _latencies_ms(rg, task_ids[database])
            rows.append(
                (
                    database,
                    len(ms),
                    f"{percentile(ms, 50):.1f}",
                    f"{percentile(ms, 90):.1f}",
                    f"{percentile(ms, 99):.1f}",
                    f"{min(ms):.1f}",
                    f"{max(ms):.1f}",
                )
            )
    print()
    print(table(("database", "submits", "p50 ms", "p90 ms", "p99 ms", "min ms", "max ms"), rows))
    print(
        f"load average during the run: {min(loads):.2f} to {max(loads):.2f}; "
        "target: p50 <= 50 ms on both"
    )


if __name__ == "__main__":
    sys.exit(main())
