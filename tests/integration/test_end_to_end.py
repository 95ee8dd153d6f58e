"""Whole tasks over real HTTP with a real worker and the preview engine: MP4s decoded and measured."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from reelgate.runtime import Runtime
from reelgate.samples import sample_image, write_sample_image, write_sample_video
from reelgate.worker.worker import Worker
from tests.conftest import running_worker

I2V = "/openapi/v2/kling-video-o3-pro/image-to-video"
EDIT = "/openapi/v2/kling-video-o3-std/video-edit"


@pytest.fixture
def worker(runtime: Runtime) -> Iterator[Worker]:
    with running_worker(runtime, concurrency=1) as started:
        yield started


def upload(http: httpx.Client, path: Path) -> str:
    answer = http.post(
        "/openapi/v2/media/upload/binary", files={"file": (path.name, path.read_bytes())}
    ).json()
    assert answer["code"] == 0, answer
    return str(answer["data"]["download_url"])


def wait(
    http: httpx.Client,
    task_id: str,
    *,
    until: tuple[str, ...] = ("SUCCESS", "FAILED", "CANCEL"),
    timeout: float = 90,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task: dict[str, Any] = http.post("/openapi/v2/query", json={"taskId": task_id}).json()
        if task["status"] in until:
            return task
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not reach {until} in {timeout} s")


def probe(data: bytes) -> dict[str, Any]:
    with av.open(io.BytesIO(data), mode="r") as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
        container.seek(0)
        audio = container.streams.audio[0] if container.streams.audio else None
        return {
            "frames": frames,
            "fps": float(video.average_rate or 0),
            "size": (video.codec_context.width, video.codec_context.height),
            "codec": video.codec_context.name,
            "audio": audio.codec_context.name if audio else None,
        }


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def png_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    sample_image(width, height).save(buffer, format="PNG")
    return buffer.getvalue()


def test_image_to_video_end_to_end(http: httpx.Client, worker: Worker, tmp_path: Path) -> None:
    first = upload(
        http, write_sample_image(tmp_path / "first.jpg", width=640, height=360, variant="first")
    )
    last = upload(
        http, write_sample_image(tmp_path / "last.png", width=640, height=360, variant="last")
    )
    submitted = http.post(
        I2V,
        json={
            "prompt": "the camera pushes in; fireworks",
            "firstImageUrl": first,
            "lastImageUrl": last,
            "duration": 3,
            "sound": True,
        },
    ).json()
    task = wait(http, submitted["taskId"])
    assert task["status"] == "SUCCESS", task
    assert task["errorCode"] == ""
    (result,) = task["results"]
    assert result["outputType"] == "mp4"
    assert set(result) == {"url", "outputType", "text", "nodeId"}
    assert task["usage"]["consumeCoins"] == str(3 * 87)
    assert task["usage"]["taskCostTime"].isdigit()
    media = probe(httpx.get(result["url"]).content)
    assert media["frames"] == 72
    assert media["fps"] == 24
    assert media["codec"] == "h264"
    assert media["audio"] == "aac"
    assert media["size"][0] / media["size"][1] == pytest.approx(16 / 9, rel=0.02)


def test_sound_false_gives_no_audio_stream(http: httpx.Client, worker: Worker) -> None:
    body = {
        "prompt": "pan left",
        "firstImageUrl": data_uri(png_bytes(400, 400)),
        "duration": 3,
        "sound": False,
    }
    task = wait(
        http, http.post("/openapi/v2/kling-video-o3-std/image-to-video", json=body).json()["taskId"]
    )
    assert task["status"] == "SUCCESS", task
    media = probe(httpx.get(task["results"][0]["url"]).content)
    assert media["audio"] is None
    assert media["size"][0] == media["size"][1]


def test_video_edit_end_to_end_billed_by_input_seconds(
    http: httpx.Client, worker: Worker, tmp_path: Path, live_server: Any, api_key: str
) -> None:
    source = write_sample_video(tmp_path / "in.mp4", seconds=3.5, width=320, height=240, audio=True)
    reference = write_sample_image(tmp_path / "ref.png", width=320, height=320, variant="reference")
    before = int(http.post("/uc/openapi/accountStatus", json={}).json()["data"]["remainCoins"])
    body = {
        "prompt": "make it sepia",
        "videoUrl": upload(http, source),
        "imageUrls": [upload(http, reference)],
        "keepOriginalSound": True,
    }
    task = wait(http, http.post(EDIT, json=body).json()["taskId"])
    assert task["status"] == "SUCCESS", task
    media = probe(httpx.get(task["results"][0]["url"]).content)
    assert media["frames"] == 84  # 3.5 s at 24 fps, as the source
    assert media["size"] == (320, 240)
    assert media["audio"] == "aac"
    assert task["usage"]["consumeCoins"] == str(4 * 81)  # 3.5 s rounds up to 4 s
    after = int(http.post("/uc/openapi/accountStatus", json={}).json()["data"]["remainCoins"])
    assert before - after == 4 * 81
    outputs = httpx.post(
        live_server.url + "/task/openapi/outputs",
        json={"apiKey": api_key, "taskId": task["taskId"]},
    ).json()
    assert outputs["code"] == 0
    assert outputs["data"][0]["fileType"] == "mp4"
    assert outputs["data"][0]["consumeCoins"] == str(4 * 81)
    assert httpx.get(outputs["data"][0]["fileUrl"]).status_code == 200


BAD_INPUTS = [
    (
        "html named png",
        lambda: data_uri(b"<html><body>hello</body></html>" * 4),
        "1013",
        "firstImageUrl",
    ),
    ("image too small", lambda: data_uri(png_bytes(200, 150)), "1007", "300"),
    ("ratio too wide", lambda: data_uri(png_bytes(1200, 300)), "1007", "ratio"),
    ("unsupported scheme", lambda: "ftp://example.com/a.png", "1001", "firstImageUrl"),
    ("unreachable host", lambda: "http://127.0.0.1:9/a.png", "1001", "127.0.0.1"),
]


@pytest.mark.parametrize(
    ("case", "make_url", "code", "words"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_fails_the_task_with_its_code_and_the_worker_lives_on(
    http: httpx.Client, worker: Worker, case: str, make_url: Any, code: str, words: str
) -> None:
    coins = http.post("/uc/openapi/accountStatus", json={}).json()["data"]["remainCoins"]
    bad = http.post(I2V, json={"prompt": "x", "firstImageUrl": make_url(), "duration": 3}).json()
    task = wait(http, bad["taskId"])
    assert task["status"] == "FAILED", case
    assert task["errorCode"] == code, task["errorMessage"]
    assert words in task["errorMessage"]
    assert task["results"] is None
    assert task["failedReason"]["exception_message"] == task["errorMessage"]
    assert (
        http.post("/uc/openapi/accountStatus", json={}).json()["data"]["remainCoins"] == coins
    )  # refunded
    good = http.post(
        I2V,
        json={
            "prompt": "x",
            "firstImageUrl": data_uri(png_bytes(400, 300)),
            "duration": 3,
            "sound": False,
        },
    ).json()
    assert wait(http, good["taskId"])["status"] == "SUCCESS"


def test_oversized_input_fails_with_1008(
    http: httpx.Client, worker: Worker, runtime: Runtime
) -> None:
    runtime.settings.media.max_input_bytes = 2000
    task = wait(
        http,
        http.post(
            I2V, json={"prompt": "x", "firstImageUrl": data_uri(png_bytes(400, 300)), "duration": 3}
        ).json()["taskId"],
    )
    assert (task["status"], task["errorCode"]) == ("FAILED", "1008")


def test_private_addresses_are_refused_unless_allowed(tmp_path: Path, db_url: str) -> None:
    from tests.conftest import LiveServer, make_settings, new_key

    runtime = Runtime.open(make_settings(tmp_path / "strict", db_url, allow_private_networks=False))
    try:
        key = new_key(runtime)
        with (
            LiveServer(runtime) as server,
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as http,
        ):
            own = upload(http, write_sample_image(tmp_path / "a.png", width=400, height=300))
            w = Worker(runtime)
            http.post(
                I2V,
                json={"prompt": "x", "firstImageUrl": server.url + "/files/x.png", "duration": 3},
            )
            http.post(
                I2V, json={"prompt": "x", "firstImageUrl": own, "duration": 3, "sound": False}
            )
            w.run_once()
            w.run_once()
            tasks = http.get("/openapi/v2/queue/status").json()["data"]
            assert tasks["totalCurrentTasks"] == 0
        with runtime.db.read() as session:
            from reelgate.store.tables import Task

            rows = session.query(Task).order_by(Task.id).all()
            assert [(t.status, t.error_code) for t in rows] == [("FAILED", "1001"), ("SUCCESS", "")]
            assert "REELGATE_ALLOW_PRIVATE_NETWORKS" in rows[0].error_message
    finally:
        runtime.close()


def test_cancel_while_running_stops_the_render_and_refunds(
    http: httpx.Client, worker: Worker, live_server: Any, api_key: str
) -> None:
    before = http.post("/uc/openapi/accountStatus", json={}).json()["data"]["remainCoins"]
    long_task = http.post(
        I2V, json={"prompt": "x", "firstImageUrl": data_uri(png_bytes(400, 300)), "duration": 15}
    ).json()
    wait(http, long_task["taskId"], until=("RUNNING",))
    cancel = httpx.post(
        live_server.url + "/task/openapi/cancel",
        json={"apiKey": api_key, "taskId": long_task["taskId"]},
    ).json()
    assert cancel == {"code": 0, "msg": "success", "data": None}
    assert (
        http.post("/openapi/v2/query", json={"taskId": long_task["taskId"]}).json()["status"]
        == "CANCEL"
    )
    assert http.post("/uc/openapi/accountStatus", json={}).json()["data"]["remainCoins"] == before
    # The worker lets go of it and takes the next task.
    nxt = http.post(
        I2V, json={"prompt": "x", "firstImageUrl": data_uri(png_bytes(400, 300)), "duration": 3}
    ).json()
    assert wait(http, nxt["taskId"])["status"] == "SUCCESS"
    final = http.post("/openapi/v2/query", json={"taskId": long_task["taskId"]}).json()
    assert (final["status"], final["results"]) == ("CANCEL", None)


def test_running_task_reports_progress(http: httpx.Client, worker: Worker) -> None:
    task = http.post(
        I2V, json={"prompt": "x", "firstImageUrl": data_uri(png_bytes(400, 300)), "duration": 15}
    ).json()
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = http.post("/openapi/v2/query", json={"taskId": task["taskId"]})
        if answer.json()["status"] == "RUNNING":
            seen.append(float(answer.headers["X-Reelgate-Progress"]))
        if answer.json()["status"] == "SUCCESS":
            break
        time.sleep(0.05)
    assert any(0 < p < 1 for p in seen), seen
    assert seen == sorted(seen)
