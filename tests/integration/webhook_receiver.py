"""A real webhook receiver for tests: an HTTP server on a loopback port that records deliveries.

It can go down and come back on the same port, answer with a chosen status, and de-duplicate by
``webhook-id`` the way a careful receiver does.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.conftest import free_port


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class Receiver:
    def __init__(self, port: int | None = None, *, status: int = 200) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks/reelgate"
        #: Every request received, duplicates included.
        self.requests: list[Delivery] = []
        #: The status answered; a test may change it while the receiver runs.
        self.status = status
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                with receiver._lock:
                    receiver.requests.append(Delivery(self.path, headers, body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def unique(self) -> dict[str, Delivery]:
        """What a de-duplicating receiver processed: the first delivery of each webhook id."""
        seen: dict[str, Delivery] = {}
        with self._lock:
            for delivery in self.requests:
                seen.setdefault(delivery.webhook_id, delivery)
        return seen

    def wait_for(self, count: int, timeout: float = 60) -> list[Delivery]:
        """Wait until ``count`` requests arrived (duplicates count); return them all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.02)
        raise AssertionError(f"{count} deliveries expected, {len(self.requests)} arrived")
