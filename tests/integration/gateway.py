"""Two real reelgate servers for the gateway tests: B stands in for the cloud (preview engine),
A runs the ``upstream`` engine pointed at B. Everything is real: HTTP on loopback, SQLite,
workers in threads, and a TCP proxy that can cut an answer after B committed it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import func, select

from reelgate.api.app import create_app
from reelgate.config import Settings, UpstreamSettings, WorkerSettings
from reelgate.engines.upstream import UpstreamEngine
from reelgate.runtime import Runtime
from reelgate.store.tables import Task
from reelgate.worker.worker import Worker
from tests.conftest import free_port, new_key

FAST_WORKER = WorkerSettings(
    lease_seconds=3.0, heartbeat_seconds=0.2, poll_seconds=0.05, sweep_seconds=0.3
)
FAST_UPSTREAM = UpstreamSettings(
    rest_seconds=1.0, max_wait_seconds=60.0, max_poll_seconds=0.3, timeout_seconds=10.0
)


def settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": f"sqlite:///{data_dir / 'reelgate.db'}",
        "allow_private_networks": True,
        "preview_long_side": 128,
        "rate_limit_per_second": 0,
        "query_rate_limit_per_second": 0,
        "worker": FAST_WORKER,
        "upstream": FAST_UPSTREAM,
    }
    values.update(overrides)
    return Settings(**values)


class Node:
    """One reelgate: its runtime, its HTTP server (stoppable, same port), its worker thread."""

    def __init__(self, data_dir: Path, **overrides: Any) -> None:
        self.runtime = Runtime.open(settings(data_dir, **overrides))
        self.app = create_app(runtime=self.runtime)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._http_thread: threading.Thread | None = None
        self._worker_stop: threading.Event | None = None
        self._worker_thread: threading.Thread | None = None
        self.worker: Worker | None = None

    # -- HTTP ---------------------------------------------------------------------------------

    def start_http(self) -> None:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="error")
        self._server = uvicorn.Server(config)
        self._http_thread = threading.Thread(target=self._server.run, daemon=True)
        self._http_thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)

    def stop_http(self) -> None:
        if self._server is not None and self._http_thread is not None:
            self._server.should_exit = True
            self._http_thread.join(10)
            self._server = None

    # -- worker -------------------------------------------------------------------------------

    def start_worker(self, concurrency: int = 1, engine: UpstreamEngine | None = None) -> Worker:
        worker = Worker(
            self.runtime, concurrency=concurrency, engine=engine, shutdown_grace_seconds=0
        )
        self.worker = worker
        self._worker_stop = threading.Event()
        self._worker_thread = threading.Thread(
            target=worker.run, args=(self._worker_stop,), daemon=True
        )
        self._worker_thread.start()
        return worker

    def stop_worker(self) -> None:
        if self._worker_stop is not None and self._worker_thread is not None:
            self._worker_stop.set()
            self._worker_thread.join(30)
            assert not self._worker_thread.is_alive()
            self._worker_stop = None

    def close(self) -> None:
        self.stop_worker()
        self.stop_http()
        self.runtime.close()

    # -- looking inside -----------------------------------------------------------------------

    def worker_engine(self) -> UpstreamEngine:
        """The upstream engine of the last worker started."""
        assert self.worker is not None
        engine = self.worker.engines["upstream"]
        assert isinstance(engine, UpstreamEngine)
        return engine

    def new_key(
        self, *, concurrency: int = 4, coins: int = 1_000_000, queue_cap: int = 1000
    ) -> str:
        return new_key(self.runtime, coins=coins, concurrency=concurrency, queue_cap=queue_cap)

    def tasks(self) -> list[Task]:
        with self.runtime.db.read() as session:
            return list(session.execute(select(Task).order_by(Task.id)).scalars())

    def task_count(self) -> int:
        with self.runtime.db.read() as session:
            return int(session.scalar(select(func.count()).select_from(Task)) or 0)

    def client(self, api_key: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
        )


@contextmanager
def node(data_dir: Path, *, http: bool = True, **overrides: Any) -> Iterator[Node]:
    created = Node(data_dir, **overrides)
    try:
        if http:
            created.start_http()
        yield created
    finally:
        created.close()


def wait_for(condition: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or condition}")


def query(http: httpx.Client, task_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = http.post("/openapi/v2/query", json={"taskId": task_id}).json()
    return answer


def wait_until_done(http: httpx.Client, task_id: str, timeout: float = 90) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        task = query(http, task_id)
        return task if task["status"] in ("SUCCESS", "FAILED", "CANCEL") else None

    finished: dict[str, Any] = wait_for(done, timeout, f"task {task_id} to end")
    return finished


class CuttingProxy:
    """A loopback TCP proxy to ``target`` that can cut the answer to the next model submit.

    With ``cut_next_submit()`` armed, the next request whose line starts a model submit is
    forwarded whole, the upstream's answer is read and thrown away, and the client's connection
    is closed: the upstream committed the task, the client never learns it.
    """

    def __init__(self, target_port: int, submit_line: bytes = b"POST /openapi/v2/kling-") -> None:
        self.target_port = target_port
        #: How the request line of a submit starts (``POST /v1/videos`` for the Videos API).
        self.submit_line = submit_line
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cuts = 0
        self._armed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_next_submit(self) -> None:
        self._armed.set()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=30)
        except OSError:
            client.close()
            return
        dropping = threading.Event()

        def client_to_upstream() -> None:
            try:
                while chunk := client.recv(65536):
                    if self._armed.is_set() and chunk.startswith(self.submit_line):
                        self._armed.clear()
                        dropping.set()
                    upstream.sendall(chunk)
            except OSError:
                pass
            finally:
                _shut(upstream)

        threading.Thread(target=client_to_upstream, daemon=True).start()
        try:
            while chunk := upstream.recv(65536):
                if dropping.is_set():
                    # The answer exists upstream; the client sees its connection die instead.
                    self.cuts += 1
                    break
                client.sendall(chunk)
        except OSError:
            pass
        finally:
            _shut(client)
            _shut(upstream)


def _shut(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
