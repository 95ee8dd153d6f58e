"""Queue throughput: tasks/s from the first enqueue to the last task done, with a no-op job.

Every queue gets the same run: its workers (4 processes by default) are started and warmed up
with a few jobs, then one producer in this process enqueues N jobs one at a time, each in its
own transaction or broker call, and the clock runs from the first enqueue until the queue's
own record says the N-th job is done. Enqueueing is inside the measured time (it overlaps with
the work), for every queue alike.

* **reelgate** (SQLite, and PostgreSQL in a scratch database): tasks submitted through the
  service layer (``Service.submit``: the body checked and priced, coins reserved, the task and
  its first event written), no HTTP; worker processes run ``Worker`` with the no-op engine
  (``benchmarks/_common.py``), which writes a 16-byte placeholder result. Done: the task is
  SUCCESS in the database. The workers' settings are reelgate's defaults (``--poll`` changes
  ``REELGATE_WORKER__POLL_SECONDS``).
* **Celery on Redis**: one ``celery worker --pool=prefork --concurrency=4`` (4 pool processes),
  otherwise Celery's defaults (early acknowledgement, prefetch multiplier 4, no result
  backend). The job increments a Redis counter, which is how the benchmark sees it done.
* **procrastinate** (PostgreSQL, scratch database): 4 ``run_worker(concurrency=1)`` processes,
  a synchronous job that does nothing. Done: the job's row is ``succeeded``.
* **PgQueuer** (PostgreSQL, scratch database, psycopg driver): 4 processes running
  ``PgQueuer.run()`` with its defaults (batches of 10), an async job that does nothing. Done:
  the job's row has left the queue table (PgQueuer deletes it and logs it once it is done).

Systems run one after the other, round after round (``--rounds``), so slow phases of the host
spread over all of them; the table gives the best and the median of the rounds, and
``ratio`` is reelgate's median over the fastest other queue's median.

    PYTHONPATH=. python benchmarks/queue_bench.py
    PYTHONPATH=. python benchmarks/queue_bench.py --tasks 500 --rounds 3
    PYTHONPATH=. python benchmarks/queue_bench.py --systems reelgate-postgres celery-redis

Needs the ``bench`` extra (``pip install -e '.[bench]'``), PostgreSQL at 127.0.0.1:5432 (user
postgres, trust) and Redis at 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from benchmarks._common import (
    DEFAULT_POSTGRES,
    Reelgate,
    finish_profile,
    host_line,
    libpq_url,
    loadavg,
    median,
    read_claims,
    record_profile,
    run_reelgate_worker,
    scratch_postgres,
    spawn,
    stop,
    summarize_profile,
    table,
    this_script,
)
from reelgate.config import WorkerSettings

SYSTEMS = ("reelgate-sqlite", "reelgate-postgres", "celery-redis", "procrastinate", "pgqueuer")
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
#: How often the benchmark looks whether the last job is done.
POLL_DONE_SECONDS = 0.005


@dataclass
class System:
    """A queue with its workers running: how to enqueue one job, how many are done."""

    enqueue: Callable[[], object]
    done: Callable[[], int]
    procs: list[Any]
    #: What to print when the jobs do not all finish.
    describe: Callable[[], str] = lambda: ""
    #: reelgate only: the workers' claims so far, (found a task, found none).
    claims: Callable[[], tuple[int, int]] | None = None


@dataclass
class Result:
    tasks_per_second: float
    enqueue_per_second: float
    #: CPU time of the worker processes (with their children) per task, in ms.
    worker_cpu_ms: float
    load: float
    #: reelgate only: claims per task that found one, and that found none.
    empty_claims_per_task: float = float("nan")


@dataclass
class Options:
    tasks: int
    workers: int
    concurrency: int
    warmup: int
    timeout: float
    postgres: str
    redis: str
    poll: float | None
    #: reelgate keys the tasks are spread over, in turn.
    keys: int = 1
    #: Where to keep py-spy's samples of reelgate's workers (first round only), if anywhere.
    profile: Path | None = None


# -- the workers' side: the child roles of this script ------------------------------------------


def _mark_ready(ready_dir: str) -> None:
    Path(ready_dir, f"{os.getpid()}.ready").touch()


def _celery_app(redis_url: str, queue: str) -> Any:
    import redis
    from celery import Celery

    app = Celery("reelgate_bench", broker=redis_url, set_as_current=True)
    app.conf.update(
        task_default_queue=queue,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )
    counter = redis.Redis.from_url(redis_url)

    @app.task(name="noop")
    def noop() -> None:
        counter.incr(f"{queue}:done")

    return app


def _celery_worker(redis_url: str, queue: str, processes: int, ready_dir: str) -> None:
    from celery.signals import worker_ready

    app = _celery_app(redis_url, queue)
    worker_ready.connect(lambda **_: _mark_ready(ready_dir), weak=False)
    app.worker_main(
        [
            "worker",
            "--pool=prefork",
            f"--concurrency={processes}",
            f"--queues={queue}",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=WARNING",
        ]
    )


def _procrastinate_app(dsn: str) -> Any:
    import procrastinate

    # The app is defined in this script on purpose: the workers register the job themselves.
    logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @app.task(name="noop")
    def noop() -> None:
        return None

    return app


def _procrastinate_worker(dsn: str, concurrency: int, ready_dir: str) -> None:
    app = _procrastinate_app(dsn)
    _mark_ready(ready_dir)
    app.run_worker(concurrency=concurrency, wait=True)


def _pgqueuer_worker(dsn: str, ready_dir: str) -> None:
    import psycopg
    from pgqueuer import PgQueuer

    async def main() -> None:
        connection = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        pgq = PgQueuer.from_psycopg_connection(connection)

        @pgq.entrypoint("noop")
        async def noop(job: object) -> None:
            return None

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, pgq.shutdown.set)
        _mark_ready(ready_dir)
        await pgq.run()

    asyncio.run(main())


def _reelgate_worker(concurrency: int, ready_dir: str) -> None:
    _mark_ready(ready_dir)
    run_reelgate_worker(concurrency, Path(ready_dir, f"{os.getpid()}.claims"))


# -- the systems, as the producer sees them ---------------------------------------------------


def _wait_ready(ready_dir: Path, count: int, procs: list[Any], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(list(ready_dir.glob("*.ready"))) < count:
        if any(p.poll() is not None for p in procs):
            raise SystemExit("a worker process exited while starting")
        if time.monotonic() > deadline:
            raise SystemExit("the workers did not start in time")
        time.sleep(0.05)


@contextlib.contextmanager
def _reelgate(options: Options, database: str) -> Iterator[System]:
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="queue-bench-")))
        if database == "postgres":
            url = stack.enter_context(scratch_postgres(options.postgres))
        else:
            url = f"sqlite:///{tmp / 'reelgate.db'}"
        rg = stack.enter_context(Reelgate.open(tmp / "data", url, keys=options.keys))
        env = dict(rg.env)
        if options.poll is not None:
            env["REELGATE_WORKER__POLL_SECONDS"] = str(options.poll)
        ready = tmp / "ready"
        ready.mkdir()
        role = this_script("reelgate-worker", str(options.concurrency), str(ready))
        procs = [spawn(role, env) for _ in range(options.workers)]
        stack.callback(stop, procs)
        _wait_ready(ready, options.workers, procs)
        deadline = time.monotonic() + 60
        while rg.workers_registered() < options.workers and time.monotonic() < deadline:
            time.sleep(0.05)

        def describe() -> str:
            counts = {s: rg.count(s) for s in ("QUEUED", "RUNNING", "SUCCESS", "FAILED")}
            return ", ".join(f"{k} {v}" for k, v in counts.items())

        def claims() -> tuple[int, int]:
            for proc in procs:
                os.kill(proc.pid, signal.SIGUSR1)
            time.sleep(0.2)
            return read_claims(sorted(ready.glob("*.claims")))

        yield System(rg.submit, lambda: rg.count("SUCCESS"), procs, describe, claims)


@contextlib.contextmanager
def _celery(options: Options) -> Iterator[System]:
    import redis

    queue = f"reelgate-bench-{uuid.uuid4().hex[:10]}"
    client = redis.Redis.from_url(options.redis)
    app = _celery_app(options.redis, queue)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="queue-bench-")))
        stack.callback(client.delete, f"{queue}:done", queue, f"_kombu.binding.{queue}")
        processes = options.workers * options.concurrency
        role = this_script("celery-worker", options.redis, queue, str(processes), str(tmp))
        procs = [spawn(role)]
        stack.callback(stop, procs)
        _wait_ready(tmp, 1, procs)
        yield System(
            lambda: app.send_task("noop", queue=queue),
            lambda: int(client.get(f"{queue}:done") or 0),
            procs,
            lambda: f"queue length {client.llen(queue)}",
        )


@contextlib.contextmanager
def _procrastinate(options: Options) -> Iterator[System]:
    import psycopg

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="queue-bench-")))
        dsn = libpq_url(stack.enter_context(scratch_postgres(options.postgres)))
        app = _procrastinate_app(dsn)
        stack.enter_context(app.open())
        app.schema_manager.apply_schema()
        role = this_script("procrastinate-worker", dsn, str(options.concurrency), str(tmp))
        procs = [spawn(role) for _ in range(options.workers)]
        stack.callback(stop, procs)
        _wait_ready(tmp, options.workers, procs)
        watcher = stack.enter_context(psycopg.connect(dsn, autocommit=True))
        noop = app.configure_task("noop")

        def count(status: str) -> int:
            row = watcher.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = %s", (status,)
            ).fetchone()
            return int(row[0]) if row else 0

        yield System(
            noop.defer,
            lambda: count("succeeded"),
            procs,
            lambda: f"todo {count('todo')}, doing {count('doing')}, failed {count('failed')}",
        )


@contextlib.contextmanager
def _pgqueuer(options: Options) -> Iterator[System]:
    import psycopg
    from pgqueuer.db import PsycopgDriver, SyncPsycopgDriver
    from pgqueuer.queries import Queries, SyncQueries

    async def install(dsn: str) -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
            await Queries(PsycopgDriver(connection)).install()

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="queue-bench-")))
        dsn = libpq_url(stack.enter_context(scratch_postgres(options.postgres)))
        asyncio.run(install(dsn))
        role = this_script("pgqueuer-worker", dsn, str(tmp))
        procs = [spawn(role) for _ in range(options.workers)]
        stack.callback(stop, procs)
        _wait_ready(tmp, options.workers, procs)
        producer = stack.enter_context(psycopg.connect(dsn, autocommit=True))
        watcher = stack.enter_context(psycopg.connect(dsn, autocommit=True))
        queries = SyncQueries(SyncPsycopgDriver(producer))
        enqueued = 0

        def enqueue() -> None:
            nonlocal enqueued
            queries.enqueue("noop", None)
            enqueued += 1

        def left() -> int:
            row = watcher.execute("SELECT count(*) FROM pgqueuer").fetchone()
            return int(row[0]) if row else 0

        yield System(enqueue, lambda: enqueued - left(), procs, lambda: f"{left()} in the queue")


def _system(name: str, options: Options) -> contextlib.AbstractContextManager[System]:
    if name == "reelgate-sqlite":
        return _reelgate(options, "sqlite")
    if name == "reelgate-postgres":
        return _reelgate(options, "postgres")
    if name == "celery-redis":
        return _celery(options)
    if name == "procrastinate":
        return _procrastinate(options)
    return _pgqueuer(options)


# -- measuring ---------------------------------------------------------------------------------


def _cpu_seconds(procs: list[Any]) -> float:
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(proc.pid)
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    times = p.cpu_times()
                    total += times.user + times.system
    return total


def _wait_done(system: System, count: int, deadline: float, name: str) -> None:
    while system.done() < count:
        if time.monotonic() > deadline:
            raise SystemExit(
                f"{name}: {system.done()} of {count} jobs done in time ({system.describe()})"
            )
        time.sleep(POLL_DONE_SECONDS)


def measure(name: str, options: Options) -> Result:
    with _system(name, options) as system:
        for _ in range(options.warmup):
            system.enqueue()
        _wait_done(system, options.warmup, time.monotonic() + options.timeout, name)
        time.sleep(0.5)  # let the workers go back to waiting
        base = system.done()
        spies = []
        out = options.profile / name if options.profile else None
        if out and name.startswith("reelgate") and not out.exists():
            spies = record_profile([p.pid for p in system.procs], out)
        claims = system.claims() if system.claims else (0, 0)
        cpu = _cpu_seconds(system.procs)
        load = loadavg()
        started = time.perf_counter()
        for _ in range(options.tasks):
            system.enqueue()
        enqueued = time.perf_counter() - started
        _wait_done(system, base + options.tasks, time.monotonic() + options.timeout, name)
        elapsed = time.perf_counter() - started
        cpu = _cpu_seconds(system.procs) - cpu
        if spies:
            finish_profile(spies)
        result = Result(
            options.tasks / elapsed,
            options.tasks / enqueued,
            1000 * cpu / options.tasks,
            (load + loadavg()) / 2,
        )
        if system.claims:
            _, empty = system.claims()
            result.empty_claims_per_task = (empty - claims[1]) / options.tasks
        return result


def _claims_text(runs: list[Result]) -> str:
    values = [
        r.empty_claims_per_task for r in runs if r.empty_claims_per_task == r.empty_claims_per_task
    ]
    return f"{median(values):.2f}" if values else "-"


def _poll_text(poll: float | None) -> str:
    return f"default ({WorkerSettings().poll_seconds} s)" if poll is None else f"{poll} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="*", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--tasks", type=int, default=300, help="jobs per run (default 300)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per system (default 2)")
    parser.add_argument("--workers", type=int, default=4, help="worker processes (default 4)")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="jobs at once per worker process (default 1)"
    )
    parser.add_argument("--warmup", type=int, default=8, help="untimed jobs first (default 8)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per run at most")
    parser.add_argument(
        "--poll",
        type=float,
        default=None,
        help="reelgate workers' REELGATE_WORKER__POLL_SECONDS (default: reelgate's, 0.5)",
    )
    parser.add_argument(
        "--keys",
        type=int,
        default=1,
        help="spread reelgate's tasks over this many keys, in turn (default 1)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="sample reelgate's workers with py-spy in the first round; files kept here",
    )
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="PostgreSQL server URL")
    parser.add_argument("--redis", default=DEFAULT_REDIS, help="Redis URL for Celery")
    parser.add_argument("--reelgate-worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--celery-worker", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--procrastinate-worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--pgqueuer-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reelgate_worker:
        _reelgate_worker(int(args.reelgate_worker[0]), args.reelgate_worker[1])
        return
    if args.celery_worker:
        redis_url, queue, processes, ready = args.celery_worker
        _celery_worker(redis_url, queue, int(processes), ready)
        return
    if args.procrastinate_worker:
        dsn, concurrency, ready = args.procrastinate_worker
        _procrastinate_worker(dsn, int(concurrency), ready)
        return
    if args.pgqueuer_worker:
        _pgqueuer_worker(*args.pgqueuer_worker)
        return

    options = Options(
        tasks=args.tasks,
        workers=args.workers,
        concurrency=args.concurrency,
        warmup=args.warmup,
        timeout=args.timeout,
        postgres=args.postgres,
        redis=args.redis,
        poll=args.poll,
        keys=args.keys,
        profile=args.profile,
    )
    print(host_line())
    print(
        f"{args.tasks} no-op jobs per run, {args.workers} worker processes x "
        f"{args.concurrency}, {args.rounds} rounds; reelgate poll: "
        f"{_poll_text(args.poll)}, {args.keys} key(s)"
    )
    results: dict[str, list[Result]] = {name: [] for name in args.systems}
    for round_number in range(1, args.rounds + 1):
        for name in args.systems:
            result = measure(name, options)
            results[name].append(result)
            print(
                f"  round {round_number} {name:18} {result.tasks_per_second:8.1f} tasks/s "
                f"(load {result.load:.2f})",
                flush=True,
            )
    rows = []
    for name, runs in results.items():
        rows.append(
            (
                name,
                f"{max(r.tasks_per_second for r in runs):.1f}",
                f"{median([r.tasks_per_second for r in runs]):.1f}",
                f"{median([r.enqueue_per_second for r in runs]):.0f}",
                f"{median([r.worker_cpu_ms for r in runs]):.2f}",
                _claims_text(runs),
                f"{median([r.load for r in runs]):.2f}",
            )
        )
    print()
    header = ("queue", "best tasks/s", "median tasks/s", "enqueue/s", "worker CPU ms/task")
    header += ("empty claims/task", "load")
    print(table(header, rows))
    others = {n: median([r.tasks_per_second for r in v]) for n, v in results.items()}
    foreign = {n: v for n, v in others.items() if not n.startswith("reelgate")}
    if foreign:
        fastest = max(foreign, key=lambda n: foreign[n])
        print()
        for name in (n for n in others if n.startswith("reelgate")):
            print(
                f"ratio {name} / {fastest} = {others[name] / foreign[fastest]:.3f} "
                "(medians; target >= 1 on PostgreSQL)"
            )
    if args.profile:
        for name in (n for n in args.systems if n.startswith("reelgate")):
            print(f"\nprofile of reelgate's workers, {name} (files in {args.profile / name}):")
            files = sorted((args.profile / name).glob("*.txt"))
            print(summarize_profile(files, per=args.tasks, unit="task"))


if __name__ == "__main__":
    sys.exit(main())
