"""``reelgate serve`` and ``reelgate worker`` as processes on S3 storage (moto's server on
loopback): a task from upload to a decoded MP4, a large upload and its download streamed through
the API process with its memory measured, and ``reelgate gc`` on the bucket."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import av
import httpx
import psutil
import pytest

from reelgate.samples import sample_image
from tests.acceptance.test_hostile_memory import PeakRss
from tests.acceptance.test_processes import Cluster
from tests.s3 import Bucket

MB = 1024 * 1024
#: The file streamed up and down; the API process may grow by far less than it.
LARGE = 256 * MB
GROWTH_LIMIT = 64 * MB


@pytest.fixture
def cluster(tmp_path: Path, bucket: Bucket) -> Iterator[Cluster]:
    c = Cluster(tmp_path / "data", f"sqlite:///{tmp_path / 'reelgate.db'}")
    c.env.update(
        bucket.environment(
            REELGATE_MEDIA__MAX_UPLOAD_BYTES=str(LARGE + MB),
            REELGATE_S3__PART_SIZE_BYTES=str(5 * MB),
            REELGATE_S3__MAX_CONCURRENCY="2",
        )
    )
    c.start_server()
    yield c
    c.stop()


def test_serve_and_worker_on_s3(cluster: Cluster, bucket: Bucket) -> None:
    buffer = io.BytesIO()
    sample_image(640, 360).save(buffer, format="PNG")
    uploaded = cluster.http.post(
        "/openapi/v2/media/upload/binary", files={"file": ("first.png", buffer.getvalue())}
    ).json()["data"]
    assert bucket.stored_keys() == [uploaded["fileName"]]
    body = {"prompt": "a push-in", "firstImageUrl": uploaded["download_url"], "duration": 3}
    answer = cluster.http.post("/openapi/v2/kling-video-o3-pro/image-to-video", json=body).json()
    cluster.spawn("worker")
    task = cluster.wait_for(answer["taskId"], lambda t: t["status"] in ("SUCCESS", "FAILED"))
    assert task["status"] == "SUCCESS", task
    key = urlsplit(task["results"][0]["url"]).path.removeprefix("/files/")
    assert key.startswith(f"results/{task['taskId']}/") and key.endswith(f"/{task['taskId']}_1.mp4")
    assert key in bucket.stored_keys()
    video = httpx.get(task["results"][0]["url"])
    assert video.status_code == 200 and video.content == bucket.read(key)
    with av.open(io.BytesIO(video.content), mode="r") as container:
        stream = container.streams.video[0]
        assert sum(1 for _ in container.decode(stream)) == 72
    assert cluster.http.get("/readyz").json() == {"status": "ready"}

    gc = subprocess.run(
        [sys.executable, "-m", "reelgate", "gc", "--dry-run", "--json"],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert gc.returncode == 0, gc.stderr
    planned = json.loads(gc.stdout)
    assert (planned["results"]["tasks"], planned["uploads"]["files"]) == (0, 0)


def _multipart(size: int, boundary: str) -> tuple[Iterator[bytes], int, str]:
    """A form with one ``file`` part of ``size`` bytes (a ZIP by its first bytes), made as it
    is sent; its length; and the SHA-256 of the file."""
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    block = os.urandom(MB)
    digest = hashlib.sha256()
    first = b"PK\x03\x04" + block[4:]

    pieces = [first, *([block] * (size // MB - 1))]
    for piece in pieces:
        digest.update(piece)

    def body() -> Iterator[bytes]:
        yield head
        yield from pieces
        yield tail

    return body(), len(head) + size + len(tail), digest.hexdigest()


def test_a_large_upload_and_its_download_are_streamed(cluster: Cluster, bucket: Bucket) -> None:
    small = cluster.http.post(
        "/openapi/v2/media/upload/binary", files={"file": ("warm.zip", b"PK\x03\x04warm-up")}
    ).json()
    assert small["code"] == 0, small  # boto3 loaded, a first object stored: then measure
    body, length, digest = _multipart(LARGE, "reelgate-large")
    api = psutil.Process(cluster.procs[0].pid)
    before = api.memory_info().rss
    with PeakRss(api) as up:
        answer = cluster.http.post(
            "/openapi/v2/media/upload/binary",
            content=body,
            headers={
                "Content-Type": "multipart/form-data; boundary=reelgate-large",
                "Content-Length": str(length),
            },
            timeout=300,
        ).json()
    assert answer["code"] == 0, answer
    key = f"openapi/{digest}.zip"
    assert answer["data"]["fileName"] == key and answer["data"]["size"] == str(LARGE)
    head = bucket.client.head_object(Bucket=bucket.name, Key=f"{bucket.prefix}/{key}")
    assert head["ContentLength"] == LARGE
    grown = up.peak - before
    assert grown < GROWTH_LIMIT, f"the upload grew the API by {grown / MB:.0f} MB"

    fetched = hashlib.sha256()
    received = 0
    before = api.memory_info().rss
    with PeakRss(api) as down, httpx.stream("GET", answer["data"]["download_url"]) as streamed:
        assert streamed.status_code == 200
        assert streamed.headers["content-length"] == str(LARGE)
        for piece in streamed.iter_bytes():
            fetched.update(piece)
            received += len(piece)
    assert (received, fetched.hexdigest()) == (LARGE, digest)
    grown = down.peak - before
    assert grown < GROWTH_LIMIT, f"the download grew the API by {grown / MB:.0f} MB"
