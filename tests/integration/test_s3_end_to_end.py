"""Whole tasks on S3 storage (moto's server on loopback): uploads and results in the bucket, the
signed links serving them through reelgate (GET, HEAD, Range), or S3 presigned links instead."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from reelgate.core.errors import NotReady
from reelgate.runtime import Runtime
from reelgate.samples import write_sample_image
from reelgate.service import Service
from reelgate.store.tables import Upload
from reelgate.worker.worker import Worker
from tests.conftest import LiveServer, free_port, make_settings, new_key
from tests.integration.gateway import node, wait_until_done
from tests.integration.test_end_to_end import I2V, probe, upload, wait
from tests.integration.test_upstream import PRO, body, gateway
from tests.integration.test_upstream import png as gateway_png
from tests.integration.test_upstream import upload as gateway_upload
from tests.s3 import Bucket


@pytest.fixture
def s3_runtime(tmp_path: Path, db_url: str, bucket: Bucket) -> Iterator[Runtime]:
    rt = Runtime.open(
        make_settings(
            tmp_path / "data", db_url, storage_url=bucket.storage_url, s3=bucket.settings()
        )
    )
    yield rt
    rt.close()


@pytest.fixture
def presigned_runtime(tmp_path: Path, db_url: str, bucket: Bucket) -> Iterator[Runtime]:
    settings = make_settings(
        tmp_path / "data",
        db_url,
        storage_url=bucket.storage_url,
        s3=bucket.settings(presigned_links=True),
    )
    rt = Runtime.open(settings)
    yield rt
    rt.close()


def running(runtime: Runtime) -> Iterator[httpx.Client]:
    """A live server and a worker over ``runtime``, and a client with a fresh key."""
    stop = threading.Event()
    worker = Worker(runtime, concurrency=1, shutdown_grace_seconds=5)
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        with (
            LiveServer(runtime) as server,
            httpx.Client(
                base_url=server.url,
                headers={"Authorization": f"Bearer {new_key(runtime)}"},
                timeout=30,
            ) as client,
        ):
            yield client
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive()


@pytest.fixture
def http(s3_runtime: Runtime) -> Iterator[httpx.Client]:
    yield from running(s3_runtime)


@pytest.fixture
def presigned_http(presigned_runtime: Runtime) -> Iterator[httpx.Client]:
    yield from running(presigned_runtime)


def test_a_task_on_s3_from_upload_to_result(
    http: httpx.Client, s3_runtime: Runtime, bucket: Bucket, tmp_path: Path
) -> None:
    image = write_sample_image(tmp_path / "first.jpg", width=640, height=360, variant="first")
    link = upload(http, image)
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    assert link.startswith(f"{http.base_url}/files/openapi/{digest}.jpg?")
    assert bucket.stored_keys() == [f"openapi/{digest}.jpg"]
    assert bucket.read(f"openapi/{digest}.jpg") == image.read_bytes()
    # Nothing is stored on the local disk.
    assert not (s3_runtime.settings.data_dir / "storage").exists()

    body = {"prompt": "the camera pushes in", "firstImageUrl": link, "duration": 3, "sound": True}
    task = wait(http, http.post(I2V, json=body).json()["taskId"])
    assert task["status"] == "SUCCESS", task
    (result,) = task["results"]
    key = urlsplit(result["url"]).path.removeprefix("/files/")
    # In the folder of the claim that stored it, under the name users see.
    assert re.fullmatch(rf"results/{task['taskId']}/1-[0-9a-f]{{8}}/{task['taskId']}_1\.mp4", key)
    assert key in bucket.stored_keys()
    assert result["url"].startswith(f"{http.base_url}/files/{key}?")
    served = httpx.get(result["url"])
    assert served.status_code == 200
    assert served.content == bucket.read(key)
    assert served.headers["content-type"] == "video/mp4"
    assert served.headers["x-content-type-options"] == "nosniff"
    media = probe(served.content)
    assert (media["frames"], media["fps"], media["codec"], media["audio"]) == (
        72,
        24,
        "h264",
        "aac",
    )

    head = httpx.head(result["url"])
    assert (head.status_code, head.content) == (200, b"")
    for name in ("content-length", "content-type", "accept-ranges", "etag", "last-modified"):
        assert head.headers[name] == served.headers[name], name
    assert head.headers["content-length"] == str(len(served.content))

    part = httpx.get(result["url"], headers={"Range": "bytes=100-299"})
    assert part.status_code == 206
    assert part.content == served.content[100:300]
    size = len(served.content)
    assert part.headers["content-range"] == f"bytes 100-299/{size}"
    tail = httpx.get(result["url"], headers={"Range": "bytes=-10"})
    assert (tail.status_code, tail.content) == (206, served.content[-10:])
    beyond = httpx.get(result["url"], headers={"Range": f"bytes={size}-"})
    assert (beyond.status_code, beyond.headers["content-range"]) == (416, f"bytes */{size}")
    two = httpx.get(result["url"], headers={"Range": "bytes=0-9,20-29"})
    assert two.status_code == 206
    assert two.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert int(two.headers["content-length"]) == len(two.content)
    assert served.content[:10] in two.content and served.content[20:30] in two.content


def test_the_same_upload_is_stored_once_in_the_bucket(
    http: httpx.Client, s3_runtime: Runtime, bucket: Bucket, tmp_path: Path
) -> None:
    image = write_sample_image(tmp_path / "a.png", width=320, height=240)
    first = http.post(
        "/openapi/v2/media/upload/binary", files={"file": ("a.png", image.read_bytes())}
    ).json()["data"]
    second = http.post(
        "/openapi/v2/media/upload/binary", files={"file": ("b.png", image.read_bytes())}
    ).json()["data"]
    assert first["fileName"] == second["fileName"]
    assert bucket.stored_keys() == [first["fileName"]]
    with s3_runtime.db.read() as session:
        rows = session.execute(select(Upload.storage_key, Upload.original_name)).all()
    assert sorted(rows) == [(first["fileName"], "a.png"), (first["fileName"], "b.png")]
    legacy = http.post(
        "/task/openapi/upload",
        data={"apiKey": str(http.headers["Authorization"]).removeprefix("Bearer ")},
        files={"file": ("c.png", image.read_bytes())},
    ).json()
    assert legacy["data"]["fileName"] == first["fileName"]
    assert bucket.stored_keys() == [first["fileName"]]


def test_presigned_links_point_at_the_bucket(
    presigned_http: httpx.Client, bucket: Bucket, tmp_path: Path
) -> None:
    http = presigned_http
    image = write_sample_image(tmp_path / "first.png", width=480, height=480, variant="first")
    link = upload(http, image)
    assert link.startswith(f"{bucket.endpoint_url}/{bucket.name}/{bucket.prefix}/openapi/")
    assert "X-Amz-Signature=" in link and "X-Amz-Expires=86400" in link
    fetched = httpx.get(link)  # straight from the bucket, over loopback
    assert fetched.status_code == 200 and fetched.content == image.read_bytes()
    assert fetched.headers["content-type"] == "image/png"

    # The worker fetches a presigned link as any URL (this bucket is on loopback: allowed here).
    body = {"prompt": "a slow pan", "firstImageUrl": link, "duration": 3, "sound": False}
    task = wait(http, http.post(I2V, json=body).json()["taskId"])
    assert task["status"] == "SUCCESS", task
    url = task["results"][0]["url"]
    assert url.startswith(f"{bucket.endpoint_url}/{bucket.name}/{bucket.prefix}/results/")
    video = httpx.get(url)
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    media = probe(video.content)
    assert (media["frames"], media["size"][0] == media["size"][1]) == (72, True)


def test_a_storage_out_of_reach_is_not_ready_and_its_links_answer_503(
    tmp_path: Path, db_url: str, bucket: Bucket
) -> None:
    settings = make_settings(
        tmp_path / "data",
        db_url,
        storage_url=bucket.storage_url,
        s3=bucket.settings(endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1),
    )
    runtime = Runtime.open(settings)
    try:
        with pytest.raises(NotReady) as caught:
            Service(runtime).ready()
        assert f"the bucket {bucket.name} cannot be used: " in caught.value.reason
        link = runtime.result_url("http://x", "results/1/1_1.mp4")
        with LiveServer(runtime) as server:
            assert httpx.get(server.url + "/readyz").status_code == 503
            answer = httpx.get(link.replace("http://x", server.url))
        assert answer.status_code == 503
        assert answer.json() == {
            "error": "unavailable",
            "message": "the storage does not answer; retry later",
        }
        assert answer.headers["retry-after"] == "5"
    finally:
        runtime.close()


def test_a_gateway_on_s3_uploads_its_inputs_and_keeps_the_outputs(
    tmp_path: Path, bucket: Bucket
) -> None:
    """The upstream engine reads its own links' files from the bucket to upload them upstream,
    and the worker copies the upstream's outputs into the bucket."""
    with node(tmp_path / "b") as cloud:
        cloud.start_worker()
        front = gateway(
            tmp_path,
            cloud.url,
            [cloud.new_key()],
            storage_url=bucket.storage_url,
            s3=bucket.settings(),
        )
        try:
            front.start_worker()
            with front.client(front.new_key()) as http:
                own_link = gateway_upload(http, gateway_png())
                assert own_link.startswith(f"{front.url}/files/openapi/")
                done = wait_until_done(http, http.post(PRO, json=body(own_link)).json()["taskId"])
            assert done["status"] == "SUCCESS", done
            (upstream_task,) = cloud.tasks()
            assert upstream_task.params["firstImageUrl"].startswith(f"{cloud.url}/files/openapi/")
            key = urlsplit(done["results"][0]["url"]).path.removeprefix("/files/")
            assert key.endswith(f"/{done['taskId']}_1.mp4")
            assert key in bucket.stored_keys()
            video = httpx.get(done["results"][0]["url"])
            assert video.status_code == 200 and video.content == bucket.read(key)
            assert probe(video.content)["frames"] == 72
        finally:
            front.close()
