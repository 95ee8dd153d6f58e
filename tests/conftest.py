"""Shared fixtures: a clean environment, SQLite and PostgreSQL databases, real HTTP servers."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from reelgate.config import Settings, WorkerSettings
from reelgate.runtime import Runtime
from reelgate.store import repo
from reelgate.worker.worker import Worker
from tests.s3 import aws_environment, bucket, moto_server  # noqa: F401 (fixtures)

POSTGRES_URL = os.environ.get(
    "REELGATE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def pytest_configure(config: pytest.Config) -> None:
    """The coverage floor (``fail_under`` in pyproject.toml) holds for the whole suite, the run
    of a bare ``python -m pytest``; a run of chosen tests still reports coverage but is not failed
    for it."""
    cov = config.pluginmanager.get_plugin("_cov")  # pytest-cov's, there when --cov is given
    chosen = config.args_source is not pytest.Config.ArgsSource.TESTPATHS or any(
        getattr(config.option, name, None)
        for name in ("keyword", "markexpr", "deselect", "ignore", "ignore_glob", "lf", "stepwise")
    )
    if chosen and cov is not None and hasattr(cov, "options"):
        cov.options.cov_fail_under = 0


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test, never from the developer's shell."""
    for name in list(os.environ):
        if name.startswith(("REELGATE_", "RUNNINGHUB_")) and name != "REELGATE_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)


def _fresh_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"reelgate_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # the suite must fail, not skip, without PostgreSQL
        admin.dispose()
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is not usable: {exc}")
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'reelgate.db'}"
    else:
        yield from _fresh_postgres_database()


def make_settings(data_dir: Path, db_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "database_url": db_url,
        "allow_private_networks": True,
        "preview_long_side": 256,
        "rate_limit_per_second": 0,
        "query_rate_limit_per_second": 0,
        "worker": WorkerSettings(
            lease_seconds=3.0, heartbeat_seconds=0.3, poll_seconds=0.05, sweep_seconds=0.5
        ),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path / "data", db_url)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime.open(settings)
    yield rt
    rt.close()


def new_key(
    runtime: Runtime, *, coins: int = 100_000, concurrency: int = 2, queue_cap: int = 1000
) -> str:
    with runtime.db.write() as session:
        return repo.create_key(
            session, name="test", coins=coins, concurrency=concurrency, queue_cap=queue_cap
        ).api_key


@pytest.fixture
def api_key(runtime: Runtime) -> str:
    return new_key(runtime)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """The real app behind uvicorn on a loopback port, in a thread."""

    def __init__(self, runtime: Runtime) -> None:
        from reelgate.api.app import create_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(runtime=runtime), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def live_server(runtime: Runtime) -> Iterator[LiveServer]:
    with LiveServer(runtime) as server:
        yield server


@pytest.fixture
def http(live_server: LiveServer, api_key: str) -> Iterator[httpx.Client]:
    """An HTTP client for the live server, authenticated with a fresh key."""
    with httpx.Client(
        base_url=live_server.url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
    ) as client:
        yield client


@contextmanager
def running_worker(runtime: Runtime, *, concurrency: int = 1) -> Iterator[Worker]:
    """A real worker in a thread for the length of the block; it must stop within 30 s."""
    stop = threading.Event()
    worker = Worker(runtime, concurrency=concurrency, shutdown_grace_seconds=5)
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
