"""A real ``reelgate serve`` under hostile bodies of 100 MB: each is answered with its documented
code, the API process stays small while it happens, and a good request still works after.

The database plays no part in what is measured here (how much of a body the HTTP layer holds),
so this runs on the embedded SQLite only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.acceptance.test_processes import Cluster
from tests.rawhttp import MB, Answer, Connection, boundary, chunked, filler, form_part

HUGE = 100 * MB
I2V = "/openapi/v2/kling-video-o3-pro/image-to-video"
STATUS = "/task/openapi/status"
UPLOAD = "/openapi/v2/media/upload/binary"
LEGACY = "/task/openapi/upload"
#: Most the API process may grow, at any moment of the attack, over its size before it.
GROWTH_LIMIT = 100 * MB


@dataclass
class Outcome:
    answer: dict[str, Any] | None
    sent: int


def attack(
    port: int, method: str, path: str, headers: dict[str, str], body: Iterable[bytes]
) -> Outcome:
    """Send ``body`` while reading the answer; the server may close the connection on it."""
    with Connection(port, timeout=60) as conn:
        conn.send_head(method, path, headers)
        sender = conn.send_in_background(body)
        answer: Answer | None
        try:
            answer = conn.read_answer()
        except OSError:  # reset after the refusal, before the answer was read
            answer = None
        conn.stop_sending()
        sender.join()
    return Outcome(answer.json() if answer is not None else None, sender.sent)


class PeakRss:
    """The largest resident size of a process, sampled in a thread while a block runs."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.peak = process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path / "data", f"sqlite:///{tmp_path / 'reelgate.db'}")
    cluster.start_server()
    yield cluster
    cluster.stop()


def key_of(server: Cluster) -> str:
    return str(server.http.headers["Authorization"]).removeprefix("Bearer ")


def good_submit(server: Cluster) -> dict[str, Any]:
    body = {"prompt": "a lantern street", "firstImageUrl": "https://example.com/a.png"}
    return dict(server.http.post(I2V, json=body).json())


def test_hostile_bodies_leave_the_api_process_small_and_answering(server: Cluster) -> None:
    port = server.port
    bearer = {"Authorization": f"Bearer {key_of(server)}"}
    stream = {"Transfer-Encoding": "chunked"}
    bound = boundary()
    multipart = {"Content-Type": f"multipart/form-data; boundary={bound}"}
    deep = ("[" * 200_000 + "]" * 200_000).encode()

    def file_body() -> Iterator[bytes]:
        return chunked([form_part(bound, "file", b"\x89PNG\r\n\x1a\n", "a.png"), *filler(HUGE)])

    #: name → (request, what it must be answered with: the body's code field and value)
    attacks: dict[str, tuple[Callable[[], Outcome], tuple[str, object]]] = {
        "keyless v1, 100 MB declared": (
            lambda: attack(port, "POST", STATUS, {"Content-Length": str(HUGE)}, filler(HUGE)),
            ("code", 301),
        ),
        "keyless v1, 100 MB chunked": (
            lambda: attack(port, "POST", STATUS, stream, chunked(filler(HUGE))),
            ("code", 301),
        ),
        "keyed v2 submit, 100 MB chunked": (
            lambda: attack(port, "POST", I2V, {**stream, **bearer}, chunked(filler(HUGE))),
            ("errorCode", "1007"),
        ),
        "keyed upload, a 100 MB file": (
            lambda: attack(port, "POST", UPLOAD, {**stream, **bearer, **multipart}, file_body()),
            ("code", 1008),
        ),
        "keyless upload, 100 MB declared": (
            lambda: attack(
                port, "POST", UPLOAD, {"Content-Length": str(HUGE), **multipart}, filler(HUGE)
            ),
            ("code", 1008),
        ),
        "keyless legacy upload, a 100 MB file": (
            lambda: attack(port, "POST", LEGACY, {**stream, **multipart}, file_body()),
            ("code", 802),
        ),
        "keyed v2 submit, deep JSON": (
            lambda: attack(port, "POST", I2V, {"Content-Length": str(len(deep)), **bearer}, [deep]),
            ("errorCode", "1007"),
        ),
    }

    assert good_submit(server)["status"] == "QUEUED"  # first use of everything, before measuring
    api = psutil.Process(server.procs[0].pid)
    before = api.memory_info().rss
    outcomes: dict[str, list[Outcome]] = {}
    with PeakRss(api) as rss, ThreadPoolExecutor(max_workers=3) as pool:
        for name, (run, _) in attacks.items():
            three_at_once = [pool.submit(run) for _ in range(3)]
            outcomes[name] = [future.result() for future in three_at_once]

    assert rss.peak - before < GROWTH_LIMIT, f"grew by {(rss.peak - before) / MB:.0f} MB"
    for name, (_, (field, code)) in attacks.items():
        for outcome in outcomes[name]:
            assert outcome.sent < HUGE, f"{name}: the server read all of it"
            if outcome.answer is not None:
                assert outcome.answer[field] == code, (name, outcome.answer)
        answered = [o for o in outcomes[name] if o.answer is not None]
        assert answered, f"{name}: no answer was read"
    assert good_submit(server)["status"] == "QUEUED"
    assert server.http.get("/healthz").json() == {"status": "ok"}
    storage = Path(server.env["REELGATE_DATA_DIR"]) / "storage"
    assert [p.name for p in storage.rglob("*") if p.is_file()] == []
