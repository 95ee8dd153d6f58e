"""A real worker given every kind of hostile media at once, and one good task after them.

Everything is real: the API over HTTP, the queue, the worker with its fetcher and the preview
engine, the media served by a loopback HTTP server. Every hostile task must fail with its
documented code and a message that says why; the good task, claimed last, must succeed with a
decodable MP4; the worker must stay up; and the process's memory must stay bounded throughout
(a naive decode of the corpus needs gigabytes). Only 127.0.0.1 is ever contacted: the worker's
HTTP client refuses anything else, and the names the redirects use resolve through a stub.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from reelgate.config import MediaSettings
from reelgate.media import MediaFetcher
from reelgate.runtime import Runtime
from reelgate.worker.worker import Worker
from tests import hostile_corpus
from tests.conftest import LiveServer, make_settings, new_key
from tests.memory import MB, PeakRss
from tests.unit.media.media_support import FakeDns, LoopbackOnlyTransport, MediaServer

I2V = "/openapi/v2/kling-video-o3-std/image-to-video"
EDIT = "/openapi/v2/kling-video-o3-std/video-edit"
#: The most the process may grow while the whole corpus is processed.
MEMORY_LIMIT = 300 * MB


@pytest.fixture
def media_server() -> Iterator[MediaServer]:
    server = MediaServer()
    server.thread.start()
    yield server
    server.stopping.set()
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    settings = make_settings(
        tmp_path / "data",
        f"sqlite:///{tmp_path / 'reelgate.db'}",
        # The production default: private networks refused. Only the media server's address
        # is trusted, so that each redirect's target is still judged.
        allow_private_networks=False,
        media=MediaSettings(fetch_timeout_seconds=1.5, allowed_networks=["127.0.0.1/32"]),
        preview_long_side=128,
    )
    rt = Runtime.open(settings)
    yield rt
    rt.close()


@pytest.fixture
def transport() -> LoopbackOnlyTransport:
    return LoopbackOnlyTransport()


@pytest.fixture
def worker(runtime: Runtime, transport: LoopbackOnlyTransport) -> Iterator[Worker]:
    w = Worker(runtime, concurrency=2, shutdown_grace_seconds=5)
    # The worker's own fetcher, with an HTTP client that can only reach 127.0.0.1.
    w.fetcher.close()
    client = httpx.Client(transport=transport, trust_env=False)
    media = runtime.settings.media
    w.fetcher = MediaFetcher(
        media,
        allow_private_networks=False,
        allowed_networks=media.allowed_networks,
        own_file=runtime.own_file,
        http_client=client,
    )
    stop = threading.Event()
    thread = threading.Thread(target=w.run, args=(stop,), daemon=True)
    thread.start()
    yield w
    stop.set()
    thread.join(30)
    client.close()
    assert not thread.is_alive()


def _body(case: hostile_corpus.Hostile, url: str) -> tuple[str, dict[str, Any]]:
    if case.field == "video":
        return EDIT, {"prompt": "make it sepia", "videoUrl": url, "keepOriginalSound": False}
    return I2V, {"prompt": "pan left", "firstImageUrl": url, "duration": 3, "sound": False}


def _wait(http: httpx.Client, task_ids: list[str], timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    done: dict[str, Any] = {}
    while time.monotonic() < deadline and len(done) < len(task_ids):
        for task_id in task_ids:
            if task_id not in done:
                task = http.post("/openapi/v2/query", json={"taskId": task_id}).json()
                if task["status"] in ("SUCCESS", "FAILED", "CANCEL"):
                    done[task_id] = task
        time.sleep(0.1)
    assert len(done) == len(task_ids), f"unfinished: {set(task_ids) - set(done)}"
    return done


def test_a_worker_survives_the_hostile_corpus(
    runtime: Runtime,
    worker: Worker,
    media_server: MediaServer,
    transport: LoopbackOnlyTransport,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    dns = FakeDns({"internal.test": ["10.1.2.3"]})
    dns.install(monkeypatch)
    good = media_server.add("good.png", hostile_corpus.image(400, 300), "image/png")
    cases = hostile_corpus.corpus(tmp_path / "corpus", "good.png")
    urls = {
        case.name: media_server.base + case.route
        if case.route
        else media_server.add(case.name, case.body, case.content_type)
        for case in cases
    }
    with (
        LiveServer(runtime) as live,
        httpx.Client(
            base_url=live.url,
            headers={"Authorization": f"Bearer {new_key(runtime, concurrency=20)}"},
            timeout=30,
        ) as http,
        PeakRss() as peak,
    ):
        submitted: dict[str, str] = {}
        for case in cases:
            path, body = _body(case, urls[case.name])
            answer = http.post(path, json=body).json()
            assert answer["errorCode"] == "", answer
            submitted[case.name] = answer["taskId"]
        # Submitted last, claimed last: the worker still works after all of the above.
        good_task = http.post(I2V, json=_body(cases[-1], good)[1]).json()["taskId"]
        tasks = _wait(http, [*submitted.values(), good_task])
        output = httpx.get(tasks[good_task]["results"][0]["url"]).content

    for case in cases:
        task = tasks[submitted[case.name]]
        assert (task["status"], task["errorCode"]) == ("FAILED", case.code), (case.name, task)
        assert case.message in task["errorMessage"], (case.name, task["errorMessage"])
    assert tasks[good_task]["status"] == "SUCCESS", tasks[good_task]
    with av.open(io.BytesIO(output), mode="r") as container:
        stream = container.streams.video[0]
        assert sum(1 for _ in container.decode(stream)) == 72  # 3 s at 24 fps
        assert (stream.codec_context.width, stream.codec_context.height) == (128, 96)
    assert {request.url.host for request in transport.requests} == {"127.0.0.1"}
    assert peak.growth < MEMORY_LIMIT, str(peak)
