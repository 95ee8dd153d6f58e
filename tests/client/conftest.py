"""Real reelgate servers for the SDK and CLI tests: in-process (ASGI), over HTTP in a thread,
and as a ``reelgate serve`` subprocess.

The in-process servers run the real API, store, storage and worker; their worker renders with
``StubEngine``, a fast engine whose prompt words make a task slow (``slow``) or fail (``fail``),
so that deadlines, cancels and failures are deterministic.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select

from reelgate.api.app import create_app
from reelgate.config import Settings, WorkerSettings
from reelgate.core.catalogue import Family
from reelgate.core.errors import RenderFailed
from reelgate.engines.base import (
    Capabilities,
    RenderContext,
    RenderOutput,
    RenderResult,
    RenderSpec,
)
from reelgate.runtime import Runtime
from reelgate.samples import write_sample_image, write_sample_video
from reelgate.store import repo
from reelgate.store.tables import Task, Upload
from reelgate.worker.worker import Worker

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class StubEngine:
    """Renders a tiny real MP4 at once; with ``steady`` in the prompt it takes ~1 s, with
    ``slow`` ~3 s, and with ``fail`` it fails."""

    name = "stub"
    capabilities = Capabilities(families=frozenset(Family))

    def ready(self) -> tuple[bool, str]:
        return True, "ready"

    def render(self, spec: RenderSpec, ctx: RenderContext) -> RenderResult:
        if "fail" in spec.prompt:
            raise RenderFailed("the stub engine was told to fail")
        steps, pause = (2, 0.01)
        if "steady" in spec.prompt:
            steps, pause = 10, 0.1
        if "slow" in spec.prompt:
            steps, pause = 30, 0.1
        for step in range(steps):
            ctx.raise_if_cancelled()
            ctx.report_progress(step / steps)
            time.sleep(pause)
        out = ctx.scratch_dir / "out.mp4"
        write_sample_video(out, seconds=0.5, width=64, height=48, fps=8, audio=False)
        return RenderResult((RenderOutput(out, "mp4"),))


@dataclass
class Server:
    """A reelgate server the tests can reach and inspect."""

    runtime: Runtime
    api_key: str
    url: str = "http://reelgate.test"

    def new_key(self, *, coins: int = 100_000, concurrency: int = 2, queue_cap: int = 1000) -> str:
        with self.runtime.db.write() as session:
            return repo.create_key(
                session, name="test", coins=coins, concurrency=concurrency, queue_cap=queue_cap
            ).api_key

    def task_count(self) -> int:
        with self.runtime.db.read() as session:
            return int(session.scalar(select(func.count()).select_from(Task)) or 0)

    def upload_count(self) -> int:
        with self.runtime.db.read() as session:
            return int(session.scalar(select(func.count()).select_from(Upload)) or 0)


def server_settings(data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "allow_private_networks": True,
        "rate_limit_per_second": 0,
        "query_rate_limit_per_second": 0,
        "worker": WorkerSettings(
            lease_seconds=3.0, heartbeat_seconds=0.3, poll_seconds=0.02, sweep_seconds=0.5
        ),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@contextmanager
def running_server(data_dir: Path, *, worker: bool, **overrides: object) -> Iterator[Server]:
    runtime = Runtime.open(server_settings(data_dir, **overrides))
    stop = threading.Event()
    thread = None
    if worker:
        thread = threading.Thread(
            target=Worker(runtime, concurrency=2, engine=StubEngine()).run,
            args=(stop,),
            daemon=True,
        )
        thread.start()
    server = Server(runtime, api_key="")
    server.api_key = server.new_key()
    try:
        yield server
    finally:
        stop.set()
        if thread is not None:
            thread.join(15)
        runtime.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A reelgate server with a worker, reached in-process (``asgi`` transport)."""
    with running_server(tmp_path / "server", worker=True) as srv:
        yield srv


@pytest.fixture
def idle_server(tmp_path: Path) -> Iterator[Server]:
    """A reelgate server without workers: every task stays QUEUED."""
    with running_server(tmp_path / "idle", worker=False) as srv:
        yield srv


def asgi(server: Server) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=create_app(runtime=server.runtime))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def over_http(server: Server) -> Iterator[Server]:
    """The same server behind uvicorn on a loopback port, in a thread."""
    port = free_port()
    config = uvicorn.Config(
        create_app(runtime=server.runtime), host="127.0.0.1", port=port, log_level="warning"
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield Server(server.runtime, server.api_key, f"http://127.0.0.1:{port}")
    finally:
        uv.should_exit = True
        thread.join(10)


@pytest.fixture
def live(server: Server) -> Iterator[Server]:
    """``server`` over real HTTP."""
    with over_http(server) as srv:
        yield srv


@pytest.fixture
def live_idle(idle_server: Server) -> Iterator[Server]:
    with over_http(idle_server) as srv:
        yield srv


@dataclass
class ServeProcess:
    url: str
    api_key: str
    data_dir: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def serve_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """``reelgate serve`` as a real subprocess, with its embedded worker and default engine."""
    data_dir = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REELGATE_", "RUNNINGHUB_"))}
    env.update(
        REELGATE_DATA_DIR=str(data_dir),
        REELGATE_ALLOW_PRIVATE_NETWORKS="true",
        REELGATE_RATE_LIMIT_PER_SECOND="0",
        REELGATE_QUERY_RATE_LIMIT_PER_SECOND="0",
        REELGATE_PREVIEW_LONG_SIDE="160",
        REELGATE_DEFAULT_KEY_CONCURRENCY="2",
        PYTHONPATH=str(ROOT),
    )
    log = (data_dir / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reelgate",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=data_dir,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"reelgate serve exited: {(data_dir / 'serve.log').read_text()}")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("reelgate serve did not come up")
            time.sleep(0.1)
        key = (data_dir / "api-key.txt").read_text().strip()
        client_env = {**env, "REELGATE_BASE_URL": url, "REELGATE_API_KEY": key}
        yield ServeProcess(url, key, data_dir, client_env)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real input files the server accepts: two frames and a 3.5 s MP4 with sound."""
    folder = tmp_path_factory.mktemp("media")
    return {
        "first": write_sample_image(folder / "first.png", width=480, height=320, variant="first"),
        "last": write_sample_image(folder / "last.jpg", width=480, height=320, variant="last"),
        "video": write_sample_video(
            folder / "clip.mp4", seconds=3.5, width=160, height=120, fps=12
        ),
    }
