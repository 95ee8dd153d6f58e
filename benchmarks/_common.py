"""What the service benchmarks share: the no-op engine, reelgate set up through its service
layer, scratch PostgreSQL databases, worker processes, figures and the host's load.

The benchmarks run as ``PYTHONPATH=. python benchmarks/<name>.py``; the processes they start run
``python benchmarks/<name>.py --<role> …`` with the same interpreter and ``PYTHONPATH``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from reelgate.core.catalogue import Family
from reelgate.engines.base import (
    Capabilities,
    RenderContext,
    RenderOutput,
    RenderResult,
    RenderSpec,
)

REPO = Path(__file__).resolve().parent.parent
#: The server PostgreSQL the benchmarks create their scratch databases on (trust auth).
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
#: The image-to-video model every benchmark submits to.
MODEL = "kling-video-o3-pro/image-to-video"
#: Enough for any run: submits are never refused for coins or a full queue.
PLENTY_OF_COINS = 10**15
BIG_QUEUE_CAP = 10**8


# -- the no-op engine ------------------------------------------------------------------------


class NoopEngine:
    """An engine that renders nothing: it writes a 16-byte placeholder result and returns.

    The worker around it does everything it does for a real render: claim, fetch and check
    the input image, build the spec, store the output file, finish the task with its events.
    """

    name = "noop"
    capabilities = Capabilities(families=frozenset({Family.IMAGE_TO_VIDEO, Family.VIDEO_EDIT}))

    def ready(self) -> tuple[bool, str]:
        return True, ""

    def render(self, spec: RenderSpec, ctx: RenderContext) -> RenderResult:
        path = ctx.scratch_dir / "noop.mp4"
        path.write_bytes(b"reelgate-noop\x00\x00\x00")
        return RenderResult(outputs=(RenderOutput(path, "mp4"),))


def run_reelgate_worker(concurrency: int, claims_file: Path | None = None) -> None:
    """A worker process: ``Worker`` with the no-op engine until SIGTERM.

    Reads ``REELGATE_*`` from the environment like ``reelgate worker`` does. With
    ``claims_file``, the worker counts its claims (those that found a task, those that found
    none) and writes the two counts there on each SIGUSR1 and at exit.
    """
    from reelgate.config import Settings
    from reelgate.runtime import Runtime
    from reelgate.store import queue
    from reelgate.worker.worker import Worker

    if claims_file is not None:
        counts = {"found": 0, "empty": 0}
        claim_next = queue.claim_next

        def counted(*args: Any, **kwargs: Any) -> Any:
            claimed = claim_next(*args, **kwargs)
            counts["found" if claimed is not None else "empty"] += 1
            return claimed

        def write(*_: object) -> None:
            claims_file.write_text(f"{counts['found']} {counts['empty']}\n")

        queue.claim_next = counted  # the worker calls it through the module
        signal.signal(signal.SIGUSR1, write)
    runtime = Runtime.open(Settings(), migrate=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        Worker(runtime, concurrency=concurrency, engine=NoopEngine()).run(stop)
    finally:
        runtime.close()
        if claims_file is not None:
            write()


def read_claims(files: Sequence[Path]) -> tuple[int, int]:
    """The (found, empty) claims the workers last wrote (see ``run_reelgate_worker``)."""
    found = empty = 0
    for path in files:
        with contextlib.suppress(OSError, ValueError):
            a, b = path.read_text().split()
            found, empty = found + int(a), empty + int(b)
    return found, empty


# -- reelgate through its service layer ---------------------------------------------------


def sample_png(width: int = 320, height: int = 320) -> bytes:
    """A small valid input image (the contract's smallest side is 300 px)."""
    from reelgate.samples import sample_image

    buffer = io.BytesIO()
    sample_image(width, height).save(buffer, format="PNG")
    return buffer.getvalue()


def child_env(**extra: str) -> dict[str, str]:
    """This environment, with the repository on ``PYTHONPATH`` whatever the working directory."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


def reelgate_env(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a reelgate process for a benchmark: no rate limits, big keys."""
    return {
        **child_env(),
        "REELGATE_DATA_DIR": str(data_dir),
        "REELGATE_DATABASE_URL": database_url,
        "REELGATE_RATE_LIMIT_PER_SECOND": "0",
        "REELGATE_QUERY_RATE_LIMIT_PER_SECOND": "0",
        "REELGATE_DEFAULT_KEY_COINS": str(PLENTY_OF_COINS),
        "REELGATE_DEFAULT_KEY_QUEUE_CAP": str(BIG_QUEUE_CAP),
        "REELGATE_DEFAULT_KEY_CONCURRENCY": "64",
        **extra,
    }


def settings_from(env: dict[str, str]) -> Any:
    """reelgate's ``Settings`` as a process started with ``env`` would read them."""
    from reelgate.config import Settings

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass
class Reelgate:
    """A reelgate database with its keys, driven in this process through ``Service``."""

    service: Any
    #: One caller per key; submits go to them in turn.
    callers: list[Any]
    body: dict[str, Any]
    env: dict[str, str]
    submitted: int = 0

    @classmethod
    @contextlib.contextmanager
    def open(cls, data_dir: Path, database_url: str, *, keys: int = 1) -> Iterator[Reelgate]:
        """Migrate the database, create the keys, upload the input image once."""
        from reelgate.runtime import Runtime
        from reelgate.service import Service

        env = reelgate_env(data_dir, database_url)
        runtime = Runtime.open(settings_from(env))
        try:
            service = Service(runtime)
            callers = [
                service.authenticate(
                    service.create_key(f"bench {n}", coins=PLENTY_OF_COINS, concurrency=64).api_key
                )
                for n in range(keys)
            ]
            upload = service.begin_upload(callers[0], "first.png", max_bytes=10**7)
            upload.write(sample_png())
            stored, _, _ = upload.finish()
            image = service.upload_url("http://127.0.0.1:9", stored)
            body = {
                "prompt": "a slow push-in",
                "firstImageUrl": image,
                "duration": 5,
                "sound": False,
            }
            yield cls(service, callers, body, env)
        finally:
            runtime.close()

    def submit(self) -> int:
        caller = self.callers[self.submitted % len(self.callers)]
        self.submitted += 1
        return int(self.service.submit(caller, MODEL, dict(self.body)).id)

    def count(self, status: str) -> int:
        with self.service.db.read() as session:
            return int(
                session.execute(
                    text("SELECT count(*) FROM tasks WHERE status = :s"), {"s": status}
                ).scalar_one()
            )

    def workers_registered(self) -> int:
        with self.service.db.read() as session:
            return int(session.execute(text("SELECT count(*) FROM workers")).scalar_one())


# -- databases -------------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_postgres(server_url: str = DEFAULT_POSTGRES) -> Iterator[str]:
    """A new empty database on ``server_url``'s server, dropped afterwards; yields its URL."""
    name = f"reelgate_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def libpq_url(sqlalchemy_url: str) -> str:
    """``postgresql+psycopg://…`` as libpq reads it (``postgresql://…``)."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(False)


# -- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def spawn(args: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A child process of this benchmark, its output discarded (see ``stop``)."""
    return subprocess.Popen(
        list(args),
        env=child_env() if env is None else env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 20.0) -> None:
    """SIGTERM to each child (and its own children), then SIGKILL to the ones still there."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def this_script(role: str, *args: str) -> list[str]:
    """The command line that runs the calling benchmark file in one of its child roles."""
    return [sys.executable, str(Path(sys.argv[0]).resolve()), f"--{role}", *args]


# -- figures ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0–100), linear between the closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def loadavg() -> float:
    """The host's one-minute load average."""
    return os.getloadavg()[0]


def host_line() -> str:
    """Cores and load, for the top of each benchmark's output."""
    import reelgate

    one, five, fifteen = os.getloadavg()
    source = Path(reelgate.__file__).resolve().parent.parent
    commit = subprocess.run(
        ["git", "-C", str(source), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return (
        f"host: {os.cpu_count()} cores, load average {one:.2f} / {five:.2f} / {fifteen:.2f} "
        f"(1 / 5 / 15 min), Python {sys.version.split()[0]}\n"
        f"reelgate from {source} ({commit or 'not a git checkout'})"
    )


def table(header: Sequence[str], rows: Sequence[Sequence[object]], first: int = 24) -> str:
    """A plain text table: the first column left-aligned, the others right-aligned."""
    widths = [first] + [
        max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
        for i, h in enumerate(header)
        if i
    ]
    lines = []
    for row in [header, *rows]:
        cells = [f"{row[0]!s:{widths[0]}}"]
        cells += [f"{row[i]!s:>{widths[i]}}" for i in range(1, len(header))]
        lines.append("  ".join(cells))
    return "\n".join(lines)


# -- profiles -------------------------------------------------------------------------------------


#: py-spy's samples per second.
PROFILE_RATE = 250


def record_profile(
    pids: Sequence[int], out: Path, *, gil: bool = True
) -> list[subprocess.Popen[bytes]]:
    """Start ``py-spy record`` on each process, until ``finish_profile``.

    With ``gil``, only the thread holding the GIL is sampled, so the samples say where the
    Python CPU time goes. Without, every thread that is not idle is sampled: waiting for a
    database lock counts. Raw collapsed stacks land in ``out/<pid>.txt``.
    """
    out.mkdir(parents=True, exist_ok=True)
    command = ["py-spy", "record", "--format", "raw", "--rate", str(PROFILE_RATE)]
    command += ["--gil"] if gil else []
    spies = [
        subprocess.Popen(
            [*command, "--pid", str(pid), "--output", str(out / f"{pid}.txt")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]
    time.sleep(1.0)  # py-spy attaches
    return spies


def finish_profile(spies: Sequence[subprocess.Popen[bytes]]) -> None:
    """Stop the samplers; each writes its file on SIGINT."""
    for spy in spies:
        spy.send_signal(signal.SIGINT)
    for spy in spies:
        spy.wait(30)


#: Where a sample's time is counted: the first of these found from the innermost frame out.
PACKAGES = (
    ("database driver", ("sqlite3/", "psycopg/", "psycopg_pool/", "psycopg_binary")),
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    ("json", ("json/",)),
    ("logging", ("logging/",)),
    ("metrics (prometheus_client)", ("prometheus_client/",)),
    ("thread hand-off (anyio, threading)", ("anyio/", "threading.py", "concurrent/futures/")),
    ("starlette BaseHTTPMiddleware", ("starlette/middleware/base.py",)),
    ("reelgate", ("reelgate/",)),
    ("FastAPI", ("fastapi/",)),
    ("Starlette", ("starlette/",)),
    ("uvicorn + h11", ("uvicorn/", "h11/")),
    ("media (PIL, PyAV, cv2, numpy)", ("PIL/", "av/", "cv2/", "numpy/")),
    ("asyncio event loop", ("asyncio/", "selectors.py")),
)


def _function(frame: str) -> str:
    """``name (path:line)`` without the line: one entry per function."""
    return re.sub(r":\d+\)$", ")", frame)


def summarize_profile(
    files: Sequence[Path], *, per: int = 0, unit: str = "request", top: int = 22, gil: bool = True
) -> str:
    """Where the samples went: by package (innermost known frame), then reelgate's functions
    by their share of samples (counted once per stack they are on). With ``per`` (requests or
    tasks during the recording), each line also says how many ms of GIL time that is per
    ``unit``."""
    by_package: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for path in files:
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            total += count
            frames = [_function(f) for f in stack.split(";")]
            package = next(
                (
                    name
                    for frame in reversed(frames)
                    for name, keys in PACKAGES
                    if any(k in frame for k in keys)
                ),
                "other",
            )
            by_package[package] = by_package.get(package, 0) + count
            for frame in set(frames):
                if "reelgate/" in frame or "benchmarks/" in frame:
                    inclusive[frame] = inclusive.get(frame, 0) + count
    share = 100 / max(total, 1)

    def line(n: int, what: str) -> str:
        ms = f"{1000 * n / PROFILE_RATE / per:7.3f} ms/{unit}  " if per else ""
        return f"{n * share:5.1f}%  {ms}{what}"

    sampled = "with the GIL held" if gil else "of busy threads (thread-ms, not CPU)"
    lines = [line(total, f"in all: {total} samples {sampled}")]
    lines.append("by package (the innermost frame that names one):")
    lines += [line(n, name) for name, n in sorted(by_package.items(), key=lambda i: -i[1])]
    lines.append("reelgate's functions, with what they call:")
    rows = sorted(((n, f) for f, n in inclusive.items() if n * share < 99), reverse=True)
    lines += [line(n, frame) for n, frame in rows[:top]]
    return "\n".join(lines)
