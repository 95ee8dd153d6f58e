"""The official ``openai`` SDK, unmodified, against reelgate's ``/v1/videos``: a real server on
loopback, a real worker with the preview engine, real MP4s decoded and measured."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import openai
import pytest
from openai import OpenAI
from PIL import Image

from reelgate.core.status import TaskStatus
from reelgate.runtime import Runtime
from reelgate.samples import sample_image, write_sample_video
from reelgate.store import repo
from reelgate.worker.worker import Worker
from tests.conftest import LiveServer, make_settings, new_key

# The SDK marks the Videos API deprecated (OpenAI's own service closes); the client still works.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

COINS = 1_000_000


def png(width: int = 400, height: int = 300) -> bytes:
    buffer = io.BytesIO()
    sample_image(width, height).save(buffer, format="PNG")
    return buffer.getvalue()


def measured(mp4: bytes) -> tuple[int, int, float]:
    """(width, height, seconds) of an MP4, decoded."""
    with av.open(io.BytesIO(mp4), mode="r") as container:
        stream = container.streams.video[0]
        frames = len(list(container.decode(stream)))
        return stream.width, stream.height, frames / float(stream.average_rate or 1)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    opened = Runtime.open(make_settings(tmp_path, f"sqlite:///{tmp_path / 'v1.db'}"))
    yield opened
    opened.close()


@pytest.fixture
def live(runtime: Runtime) -> Iterator[LiveServer]:
    with LiveServer(runtime) as server:
        yield server


@pytest.fixture
def key(runtime: Runtime) -> str:
    return new_key(runtime, coins=COINS, concurrency=2)


@pytest.fixture
def client(live: LiveServer, key: str) -> Iterator[Any]:
    """The SDK's ``videos`` resource. Typed ``Any``: its types allow only OpenAI's own sizes and
    lengths (``"720x1280"``, ``"4"``), which the calls here leave for small, quick ones."""
    with OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0) as sdk:
        yield sdk.videos


class Running:
    """A real worker in a thread, stopped by the test."""

    def __init__(self, runtime: Runtime) -> None:
        self.stop = threading.Event()
        self.worker = Worker(runtime, concurrency=1, shutdown_grace_seconds=5)
        self.thread = threading.Thread(target=self.worker.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()


@pytest.fixture
def worker(runtime: Runtime) -> Iterator[Running]:
    running = Running(runtime)
    yield running
    running.close()


def balance(runtime: Runtime, key: str) -> int:
    with runtime.db.read() as session:
        found = repo.find_key(session, key)
        assert found is not None
        return found.coins


def test_create_and_poll_then_download_an_mp4_of_the_asked_length_and_size(
    client: Any, worker: Running
) -> None:
    video = client.create_and_poll(
        prompt="a lantern street at dusk",
        input_reference=("first.png", png(), "image/png"),
        seconds="4",
        size="192x108",
    )
    assert video.status == "completed", video.error
    assert (video.model, video.seconds, video.size, video.progress) == (
        "sora-2",
        "4",
        "192x108",
        100,
    )
    assert video.id.startswith("video_") and video.completed_at is not None
    assert video.completed_at >= video.created_at
    content = client.download_content(video.id)
    width, height, seconds = measured(content.read())
    assert (width, height) == (192, 108)
    assert abs(seconds - 4) < 0.1
    assert client.retrieve(video.id) == video


def test_poll_backs_off_by_the_servers_header_until_the_video_is_done(
    client: Any, runtime: Runtime, live: LiveServer, key: str
) -> None:
    video = client.create(
        prompt="a slow pan", input_reference=("f.png", png(), "image/png"), seconds="3"
    )
    assert video.status == "queued" and video.size == "720x1280"  # OpenAI's default size
    raw = client.with_raw_response.retrieve(video.id)
    assert raw.headers["openai-poll-after-ms"] == "1000"
    running = Running(runtime)  # only now may it run: poll() has to wait for it
    try:
        done = client.poll(video.id)
    finally:
        running.close()
    assert done.status == "completed"
    answer = httpx.get(
        f"{live.url}/v1/videos/{video.id}", headers={"Authorization": f"Bearer {key}"}
    )
    assert "openai-poll-after-ms" not in answer.headers  # done: nothing to wait for


def test_delete_cancels_a_running_job_for_real_and_refunds_it(
    client: Any, runtime: Runtime, key: str, worker: Running
) -> None:
    long_one = client.create(
        prompt="a long, large render",
        input_reference=("f.png", png(), "image/png"),
        seconds="15",
        size="1280x720",
    )
    task_id = int(long_one.id.removeprefix("video_"))
    deadline = time.monotonic() + 30
    while client.retrieve(long_one.id).status != "in_progress":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.02)
    assert balance(runtime, key) < COINS
    deleted = client.delete(long_one.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (long_one.id, True, "video.deleted")
    assert balance(runtime, key) == COINS  # refunded in full
    with pytest.raises(openai.NotFoundError):  # deleted: gone from both APIs
        client.retrieve(long_one.id)
    # The render really stops: the worker lets go of the task and takes the next one.
    deadline = time.monotonic() + 20
    while task_id in worker.worker._active:
        assert time.monotonic() < deadline, "the render went on after the cancel"
        time.sleep(0.05)
    with runtime.db.read() as session:
        task = repo.get_task(session, task_id)
        assert task is not None and task.status == TaskStatus.CANCEL.value and not task.results
    short = client.create_and_poll(
        prompt="next", input_reference=("f.png", png(), "image/png"), seconds="3", size="96x64"
    )
    assert short.status == "completed"


def test_deleting_an_ended_video_deletes_its_files(
    client: Any, live: LiveServer, key: str, runtime: Runtime, worker: Running
) -> None:
    video = client.create_and_poll(
        prompt="kept, then not", input_reference=("f.png", png(), "image/png"), seconds="4"
    )
    client.download_content(video.id, variant="thumbnail").read()  # a still is stored too
    stored = runtime.settings.resolved_storage_dir() / "results" / video.id.removeprefix("video_")
    assert sorted(p.suffix for p in stored.rglob("*") if p.is_file()) == [".mp4", ".webp"]
    assert client.delete(video.id).deleted
    assert not stored.exists()  # the task's folder, with its claim's
    with pytest.raises(openai.NotFoundError):
        client.download_content(video.id)
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}"}) as http:
        task_id = video.id.removeprefix("video_")
        answer = http.post("/openapi/v2/query", json={"taskId": task_id}).json()
        assert answer["errorCode"] == "1004"  # as an id that never existed


def test_list_pages_with_a_cursor_newest_first(client: Any, live: LiveServer, key: str) -> None:
    made = [
        client.create(
            prompt=f"shot {n}", input_reference=("f.png", png(), "image/png"), seconds="3"
        ).id
        for n in range(3)
    ]
    first = client.list(limit=2)
    assert [v.id for v in first.data] == made[::-1][:2] and first.has_more
    everything = [v.id for v in client.list(limit=2)]  # the SDK follows the cursor
    assert everything == made[::-1]
    ascending = client.list(order="asc", after=made[0])
    assert [v.id for v in ascending.data] == made[1:] and not ascending.has_more


def test_the_still_variants_are_made_from_the_video_and_ranges_are_served(
    client: Any, live: LiveServer, key: str, worker: Running
) -> None:
    video = client.create_and_poll(
        prompt="stills",
        input_reference=("f.png", png(), "image/png"),
        seconds="3",
        size="160x96",
    )
    thumbnail = Image.open(
        io.BytesIO(client.download_content(video.id, variant="thumbnail").read())
    )
    assert (thumbnail.format, thumbnail.size) == ("WEBP", (160, 96))
    sheet = Image.open(io.BytesIO(client.download_content(video.id, variant="spritesheet").read()))
    assert sheet.format == "JPEG" and sheet.size == (5 * 160, 2 * 96)  # ten frames, five a row
    whole = client.download_content(video.id).read()
    headers = {"Authorization": f"Bearer {key}", "Range": "bytes=10-19"}
    part = httpx.get(f"{live.url}/v1/videos/{video.id}/content", headers=headers)
    assert part.status_code == 206 and part.content == whole[10:20]
    assert part.headers["content-type"] == "video/mp4"
    head = httpx.head(f"{live.url}/v1/videos/{video.id}/content", headers=headers)
    assert head.status_code == 206 and head.content == b""


def test_errors_are_openai_shaped_with_4xx_statuses_and_the_contracts_codes(
    client: Any, live: LiveServer
) -> None:
    with pytest.raises(openai.AuthenticationError) as refused:
        OpenAI(api_key="nope", base_url=f"{live.url}/v1", max_retries=0).videos.list()
    assert _error(refused.value) == ("authentication_error", None, "1002")
    with pytest.raises(openai.BadRequestError) as bad:
        client.create(prompt="x", input_reference=("f.png", png(), "image/png"), seconds="99")
    assert _error(bad.value) == ("invalid_request_error", "seconds", "1007")
    with pytest.raises(openai.BadRequestError) as no_image:
        client.create(prompt="x")
    assert _error(no_image.value)[1:] == ("input_reference", "1007")
    with pytest.raises(openai.BadRequestError) as unknown_model:
        client.create(prompt="x", model="sora-9", input_reference=("f.png", png(), "image/png"))
    assert _error(unknown_model.value)[1:] == ("model", "1007")
    with pytest.raises(openai.BadRequestError) as not_media:
        client.create(prompt="x", input_reference=("f.txt", b"not an image", "text/plain"))
    assert _error(not_media.value)[2] == "1013"
    with pytest.raises(openai.NotFoundError) as missing:
        client.retrieve("video_123")
    assert _error(missing.value) == ("not_found_error", None, "1004")
    queued = client.create(prompt="x", input_reference=("f.png", png(), "image/png"))
    with pytest.raises(openai.ConflictError) as early:  # no worker: it waits, queued
        client.download_content(queued.id)
    assert _error(early.value)[2] == "813"


def test_json_bodies_take_references_by_url_and_the_extension_fields(
    live: LiveServer, key: str, runtime: Runtime, worker: Running
) -> None:
    import base64

    data_url = "data:image/png;base64," + base64.b64encode(png(480, 360)).decode()
    body: dict[str, Any] = {
        "prompt": "json",
        "model": "sora-2-pro",
        "seconds": 3,
        "size": "128x128",
        "image_reference": {"image_url": data_url},
        "generate_sound": True,
        "negative_prompt": "blurry",
        "seed": 7,
        "extra_params": {"lastImageUrl": data_url},
    }
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}"}) as http:
        created = http.post("/v1/videos", json=body)
        assert created.status_code == 200, created.text
        video = created.json()
        assert (video["model"], video["seconds"], video["size"]) == ("sora-2-pro", "3", "128x128")
        deadline = time.monotonic() + 60
        while (video := http.get(f"/v1/videos/{video['id']}").json())["status"] != "completed":
            assert video["status"] != "failed" and time.monotonic() < deadline, video
            time.sleep(0.1)
        mp4 = http.get(f"/v1/videos/{video['id']}/content").content
    with av.open(io.BytesIO(mp4)) as container:
        assert len(container.streams.audio) == 1  # generate_sound: a soundtrack
    with runtime.db.read() as session:
        task = repo.get_task(session, int(video["id"].removeprefix("video_")))
        assert task is not None
    assert task.model == "kling-video-o3-pro/image-to-video"
    assert task.params["seed"] == 7 and task.params["sound"] is True
    assert task.params["lastImageUrl"] == data_url


def test_a_video_input_reference_makes_an_edit_of_it(
    client: Any, tmp_path: Path, runtime: Runtime, worker: Running
) -> None:
    source = write_sample_video(tmp_path / "source.mp4", seconds=3, width=160, height=120)
    video = client.create_and_poll(
        prompt="make it dusk",
        input_reference=("source.mp4", source.read_bytes(), "video/mp4"),
        model="sora-2-pro",
    )
    assert video.status == "completed", video.error
    assert (video.seconds, video.size) == ("auto", "auto")  # an edit keeps its source's
    width, height, seconds = measured(client.download_content(video.id).read())
    assert (width, height) == (160, 120) and abs(seconds - 3) < 0.1
    with runtime.db.read() as session:
        task = repo.get_task(session, int(video.id.removeprefix("video_")))
        assert task is not None and task.model == "kling-video-o3-pro/video-edit"


def test_a_runninghub_task_is_a_video_too(live: LiveServer, key: str, client: Any) -> None:
    import base64

    body = {
        "prompt": "rh",
        "firstImageUrl": "data:image/png;base64," + base64.b64encode(png()).decode(),
        "duration": 3,
        "sound": False,
    }
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}"}) as http:
        task = http.post("/openapi/v2/kling-video-o3-pro/image-to-video", json=body).json()
    video = client.retrieve(f"video_{task['taskId']}")
    assert (video.model, video.seconds, video.size, video.status) == (
        "sora-2-pro",
        "3",
        "auto",
        "queued",
    )


def _error(error: openai.APIStatusError) -> tuple[str | None, str | None, str | None]:
    """(type, param, code) of an error, as the SDK read them from the body's ``error``."""
    assert isinstance(error.body, dict) and set(error.body) == {"message", "type", "param", "code"}
    return error.type, error.param, error.code


def test_reads_and_creates_count_against_their_own_budgets(tmp_path: Path) -> None:
    """A create is a submit, every other call a query, as on the RunningHub paths."""
    settings = make_settings(
        tmp_path / "limited",
        f"sqlite:///{tmp_path / 'limited.db'}",
        # One create and two other calls a minute: the windows are long enough for the test
        # never to straddle two of them.
        rate_limit_per_second=1 / 60,
        query_rate_limit_per_second=2 / 60,
        rate_limit_window_seconds=60,
    )
    limited = Runtime.open(settings)
    key = new_key(limited)
    try:
        with (
            LiveServer(limited) as live,
            OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0) as sdk,
        ):
            videos: Any = sdk.videos
            made = videos.create(prompt="a", input_reference=("f.png", png(), "image/png"))
            with pytest.raises(openai.RateLimitError) as creates:
                videos.create(prompt="b", input_reference=("f.png", png(), "image/png"))
            assert _error(creates.value) == ("rate_limit_error", None, "1003")
            assert int(creates.value.response.headers["retry-after"]) >= 1
            videos.retrieve(made.id)  # the query budget is untouched by the creates
            videos.list()
            with pytest.raises(openai.RateLimitError):
                videos.delete(made.id)
    finally:
        limited.close()


def test_retention_deletes_the_stills_with_the_video(
    client: Any, runtime: Runtime, worker: Running
) -> None:
    from datetime import timedelta

    from reelgate.retention import collect
    from reelgate.store.tables import utcnow

    video = client.create_and_poll(
        prompt="kept a week", input_reference=("f.png", png(), "image/png"), seconds="4"
    )
    client.download_content(video.id, variant="spritesheet").read()
    stored = runtime.settings.resolved_storage_dir() / "results" / video.id.removeprefix("video_")
    assert sorted(p.suffix for p in stored.rglob("*") if p.is_file()) == [".jpg", ".mp4"]
    later = utcnow() + timedelta(seconds=runtime.settings.retention.results_seconds + 60)
    assert collect(runtime, now=later).tasks == 1
    assert not stored.exists()
