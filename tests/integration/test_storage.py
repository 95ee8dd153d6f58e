"""The storage interface, the same on a local directory and on an S3 bucket (moto's server)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reelgate.config import Settings
from reelgate.core.errors import StorageError
from reelgate.runtime import Runtime
from reelgate.storage import LocalStorage, Storage, open_storage
from reelgate.storage.s3 import S3Storage
from tests.conftest import LiveServer, free_port, make_settings
from tests.s3 import Bucket


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "local":
        made: Storage = LocalStorage(tmp_path / "storage")
    else:
        bucket: Bucket = request.getfixturevalue("bucket")
        made = S3Storage(bucket.name, bucket.prefix, bucket.settings(part_size_bytes=5 * 2**20))
    yield made
    made.close()


def source(tmp_path: Path, data: bytes, name: str = "source.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_file_goes_in_and_comes_out(storage: Storage, tmp_path: Path) -> None:
    data = os.urandom(200_000)
    assert storage.put_file("results/7/7_1.mp4", source(tmp_path, data)) == len(data)
    assert storage.exists("results/7/7_1.mp4")
    stored = storage.stat("results/7/7_1.mp4")
    assert stored is not None
    assert (stored.key, stored.size, stored.name) == ("results/7/7_1.mp4", len(data), "7_1.mp4")
    assert stored.media_type == "video/mp4"
    assert stored.etag.startswith('"') and stored.modified > 0
    assert b"".join(storage.read("results/7/7_1.mp4")) == data
    assert b"".join(storage.read("results/7/7_1.mp4", 1000, 70_001)) == data[1000:70_001]
    assert b"".join(storage.read("results/7/7_1.mp4", len(data) - 5)) == data[-5:]
    assert b"".join(storage.read("results/7/7_1.mp4", 10, 10)) == b""
    pieces = list(storage.read("results/7/7_1.mp4"))
    assert len(pieces) > 1 and max(len(p) for p in pieces) <= 64 * 1024  # streamed, not whole
    copy = tmp_path / "out" / "copy.mp4"
    assert storage.download("results/7/7_1.mp4", copy)
    assert copy.read_bytes() == data


def test_moving_a_file_in_removes_the_source(storage: Storage, tmp_path: Path) -> None:
    path = source(tmp_path, b"moved")
    storage.put_file("openapi/a.png", path, move=True)
    assert not path.exists()
    assert b"".join(storage.read("openapi/a.png")) == b"moved"
    storage.put_file("openapi/a.png", source(tmp_path, b"again"))  # replaced whole
    assert b"".join(storage.read("openapi/a.png")) == b"again"


def test_a_large_file_goes_up_in_parts(storage: Storage, tmp_path: Path) -> None:
    data = os.urandom(12 * 2**20 + 3)  # above the 5 MiB part size: a multipart upload on S3
    storage.put_file("openapi/big.zip", source(tmp_path, data))
    stored = storage.stat("openapi/big.zip")
    assert stored is not None and stored.size == len(data)
    assert (
        b"".join(storage.read("openapi/big.zip", 6 * 2**20, 6 * 2**20 + 10))
        == data[6 * 2**20 : 6 * 2**20 + 10]
    )
    assert b"".join(storage.read("openapi/big.zip")) == data


def test_missing_files_and_invalid_keys(storage: Storage, tmp_path: Path) -> None:
    for key in ("results/1/none.mp4", "../outside.txt", "/etc/passwd", ""):
        assert not storage.exists(key)
        assert storage.stat(key) is None
        assert not storage.download(key, tmp_path / "nothing")
        assert not (tmp_path / "nothing").exists()
    with pytest.raises(StorageError, match="invalid storage key"):
        storage.put_file("../outside.txt", source(tmp_path, b"x"))
    storage.delete(["results/1/none.mp4", "../outside.txt"])  # nothing there: no error


def test_delete_removes_the_files_named_and_only_those(storage: Storage, tmp_path: Path) -> None:
    for key in ("results/1/1_1.mp4", "results/1/1_2.mp4", "results/2/2_1.mp4"):
        storage.put_file(key, source(tmp_path, key.encode()))
    storage.delete(iter(["results/1/1_1.mp4", "results/1/1_2.mp4"]))
    assert not storage.exists("results/1/1_1.mp4")
    assert not storage.exists("results/1/1_2.mp4")
    assert storage.exists("results/2/2_1.mp4")
    if isinstance(storage, LocalStorage):
        assert not (storage.root / "results" / "1").exists()  # the emptied folder goes too
        assert (storage.root / "results" / "2").is_dir()


def test_delete_folder_removes_every_file_in_it_and_only_those(
    storage: Storage, tmp_path: Path
) -> None:
    inside = ["results/7/1-aa/7_1.mp4", "results/7/2-bb/7_1.mp4", "results/7/7_thumbnail.webp"]
    outside = ["results/70/1-cc/70_1.mp4", "results/7.mp4", "openapi/7.png"]
    for key in inside + outside:
        storage.put_file(key, source(tmp_path, key.encode()))
    storage.delete_folder("results/7")
    assert [key for key in inside + outside if storage.exists(key)] == outside
    storage.delete_folder("results/7")  # nothing left: no error
    storage.delete_folder("../results")  # not a key: nothing
    if isinstance(storage, LocalStorage):
        assert not (storage.root / "results" / "7").exists()


def test_s3_deletes_in_batches(
    bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("reelgate.storage.s3._DELETE_BATCH", 2)  # S3's is 1000 keys a request
    storage = S3Storage(bucket.name, bucket.prefix, bucket.settings())
    keys = [f"results/{n}/{n}_1.mp4" for n in range(5)]
    for key in keys:
        storage.put_file(key, source(tmp_path, b"x"))
    storage.put_file("results/9/9_1.mp4", source(tmp_path, b"x"))
    storage.delete(keys)
    assert bucket.stored_keys() == ["results/9/9_1.mp4"]


def test_readiness_of_the_storage(storage: Storage) -> None:
    assert storage.check() == ""


def test_local_storage_says_what_is_wrong(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "storage")
    with pytest.raises(StorageError, match="no presigned links"):
        storage.presigned_url("a.png", 60)
    storage.root.rmdir()
    assert storage.check() == f"{storage.root} cannot be written: No such file or directory"


def test_the_local_root_is_the_spool(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "storage")
    assert storage.spool_dir == storage.root  # an incoming file is stored by a rename
    assert storage.local_path("openapi/a.png") == storage.root / "openapi" / "a.png"


def test_s3_presigned_links_fetch_the_file(bucket: Bucket, tmp_path: Path) -> None:
    storage = S3Storage(bucket.name, bucket.prefix, bucket.settings())
    storage.put_file("openapi/x.png", source(tmp_path, b"\x89PNG data"))
    url = storage.presigned_url("openapi/x.png", 600)
    assert url.startswith(f"{bucket.endpoint_url}/{bucket.name}/{bucket.prefix}/openapi/x.png?")
    answer = httpx.get(url)
    assert answer.status_code == 200 and answer.content == b"\x89PNG data"
    # Stored with the type and download name reelgate's own links give it.
    assert answer.headers["content-type"] == "image/png"
    assert answer.headers["content-disposition"] == 'attachment; filename="x.png"'
    assert storage.local_path("openapi/x.png") is None
    assert storage.spool_dir is None
    assert bucket.stored_keys() == ["openapi/x.png"]  # under the prefix


def test_s3_without_a_prefix(bucket: Bucket, tmp_path: Path) -> None:
    storage = S3Storage(bucket.name, "", bucket.settings())
    storage.put_file("openapi/y.png", source(tmp_path, b"y"))
    assert bucket.client.get_object(Bucket=bucket.name, Key="openapi/y.png")["Body"].read() == b"y"


def test_s3_that_cannot_be_reached(bucket: Bucket, tmp_path: Path) -> None:
    unreachable = bucket.settings(endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1)
    storage = S3Storage(bucket.name, bucket.prefix, unreachable)
    assert storage.check().startswith(f"the bucket {bucket.name} cannot be used: ")
    with pytest.raises(StorageError, match="could not look up openapi/z"):
        storage.stat("openapi/z.png")
    with pytest.raises(StorageError, match="could not store openapi/z"):
        storage.put_file("openapi/z.png", source(tmp_path, b"z"))
    with pytest.raises(StorageError, match="could not read openapi/z"):
        b"".join(storage.read("openapi/z.png"))
    with pytest.raises(StorageError, match="could not delete 1 files"):
        storage.delete(["openapi/z.png"])


def test_s3_a_bucket_that_does_not_exist(bucket: Bucket) -> None:
    storage = S3Storage("no-such-bucket-here", "", bucket.settings())
    assert storage.check().startswith("the bucket no-such-bucket-here cannot be used: ")


def test_the_storage_url_chooses_the_storage(bucket: Bucket, tmp_path: Path) -> None:
    local = open_storage(Settings(data_dir=tmp_path / "data"))
    assert isinstance(local, LocalStorage) and local.root == (tmp_path / "data" / "storage")
    chosen = open_storage(Settings(storage_url=f"file://{tmp_path / 'files'}"))
    assert isinstance(chosen, LocalStorage) and chosen.root == tmp_path / "files"
    remote = open_storage(Settings(storage_url="s3://my-bucket/some/prefix/", s3=bucket.settings()))
    assert isinstance(remote, S3Storage)
    assert (remote.bucket, remote.prefix) == ("my-bucket", "some/prefix")
    remote.close()


@pytest.fixture(params=["local", "s3"])
def served(
    request: pytest.FixtureRequest, tmp_path: Path, db_url: str
) -> Iterator[tuple[Runtime, str]]:
    """A runtime on either storage, behind a live server; and that server's address."""
    overrides: dict[str, object] = {}
    if request.param == "s3":
        bucket: Bucket = request.getfixturevalue("bucket")
        overrides = {"storage_url": bucket.storage_url, "s3": bucket.settings()}
    runtime = Runtime.open(make_settings(tmp_path / "data", db_url, **overrides))
    try:
        with LiveServer(runtime) as server:
            yield runtime, server.url
    finally:
        runtime.close()


def test_file_links_answer_alike_from_either_storage(
    served: tuple[Runtime, str], tmp_path: Path
) -> None:
    runtime, base = served
    data = bytes(range(256)) * 40
    runtime.storage.put_file("results/5/5_1.mp4", source(tmp_path, data))
    link = runtime.result_url(base, "results/5/5_1.mp4")

    whole = httpx.get(link)
    assert (whole.status_code, whole.content) == (200, data)
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.headers["content-disposition"] == 'attachment; filename="5_1.mp4"'
    assert whole.headers["x-content-type-options"] == "nosniff"
    etag, modified = whole.headers["etag"], whole.headers["last-modified"]

    same = httpx.get(link, headers={"Range": "bytes=10-19", "If-Range": etag})
    assert (same.status_code, same.content) == (206, data[10:20])
    dated = httpx.get(link, headers={"Range": "bytes=10-19", "If-Range": modified})
    assert (dated.status_code, dated.content) == (206, data[10:20])
    changed = httpx.get(link, headers={"Range": "bytes=10-19", "If-Range": '"another"'})
    assert (changed.status_code, changed.content) == (200, data)
    weak = httpx.get(link, headers={"Range": "bytes=10-19", "If-Range": f"W/{etag}"})
    assert weak.status_code == 200

    head = httpx.head(link, headers={"Range": "bytes=0-99"})
    assert (head.status_code, head.content) == (206, b"")
    assert head.headers["content-range"] == f"bytes 0-99/{len(data)}"
    assert head.headers["content-length"] == "100"

    malformed = httpx.get(link, headers={"Range": "bytes=9-3"})
    assert (malformed.status_code, malformed.text) == (
        400,
        "Range header: start must be less than end",
    )
    assert malformed.headers["x-content-type-options"] == "nosniff"

    parts = httpx.get(link, headers={"Range": "bytes=0-3,100-103"})
    assert parts.status_code == 206
    boundary = parts.headers["content-type"].removeprefix("multipart/byteranges; boundary=")
    expected = (
        b"".join(
            f"--{boundary}\r\nContent-Type: video/mp4\r\n"
            f"Content-Range: bytes {start}-{end - 1}/{len(data)}\r\n\r\n".encode()
            + data[start:end]
            + b"\r\n"
            for start, end in ((0, 4), (100, 104))
        )
        + f"--{boundary}--".encode()
    )
    assert parts.content == expected
    assert parts.headers["content-length"] == str(len(expected))
    many = httpx.get(link, headers={"Range": "bytes=" + ",".join(["0-1"] * 101)})
    assert (many.status_code, many.content) == (200, data)
