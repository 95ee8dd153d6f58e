"""The pure parts of storage and retention: settings, keys, served types, ranges, expiry."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from reelgate.api.fileresponse import MalformedRange, RangeNotSatisfiable, parse_ranges
from reelgate.config import S3Settings, Settings
from reelgate.retention import Swept, is_expired
from reelgate.storage.base import StoredObject, key_parts, media_type
from reelgate.store.tables import Task

NOW = datetime(2026, 12, 8, 12, 0, 0)


@pytest.mark.parametrize(
    ("url", "bucket"),
    [
        ("s3://media", ("media", "")),
        ("s3://media/", ("media", "")),
        ("s3://media/reelgate/prod/", ("media", "reelgate/prod")),
        ("file:///srv/reelgate", None),
        (None, None),
    ],
)
def test_the_storage_url_names_a_bucket_or_a_directory(
    url: str | None, bucket: tuple[str, str] | None
) -> None:
    assert Settings(storage_url=url).s3_bucket() == bucket


@pytest.mark.parametrize("url", ["s3://", "s3:///prefix", "file://", "/srv/files", "gs://b/p"])
def test_other_storage_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationError, match=r"must be file:///path or s3://bucket/prefix"):
        Settings(storage_url=url)


def test_presigned_links_need_s3_and_at_most_seven_days() -> None:
    s3 = S3Settings(presigned_links=True)
    with pytest.raises(ValidationError, match="needs an s3:// REELGATE_STORAGE_URL"):
        Settings(s3=s3)
    with pytest.raises(ValidationError, match="at most 604800 s"):
        Settings(storage_url="s3://b", s3=s3, result_url_ttl_seconds=8 * 86_400)
    assert Settings(storage_url="s3://b", s3=s3, upload_url_ttl_seconds=7 * 86_400)


def test_s3_credentials_come_in_pairs() -> None:
    with pytest.raises(ValidationError, match="set both access_key_id and secret_access_key"):
        S3Settings(access_key_id="AKIA")
    settings = S3Settings(access_key_id="AKIA", secret_access_key="shh")
    assert "shh" not in repr(settings)


def test_retention_defaults_to_seven_days() -> None:
    retention = Settings().retention
    assert (retention.results_seconds, retention.uploads_seconds) == (7 * 86_400, 7 * 86_400)
    with pytest.raises(ValidationError):
        Settings.model_validate({"retention": {"results_seconds": -1}})


@pytest.mark.parametrize(
    ("key", "parts"),
    [
        ("openapi/a.png", ("openapi", "a.png")),
        ("results/1/1_1.mp4", ("results", "1", "1_1.mp4")),
        ("../a", None),
        ("a/../../b", None),
        ("/etc/passwd", None),
        ("", None),
    ],
)
def test_valid_keys(key: str, parts: tuple[str, ...] | None) -> None:
    assert key_parts(key) == parts


def test_files_are_served_as_their_extension_says_or_as_bytes() -> None:
    assert media_type("results/1/1_1.MP4") == "video/mp4"
    assert media_type("openapi/x.jpeg") == "image/jpeg"
    assert media_type("results/page.html") == "application/octet-stream"
    assert media_type("results/no-extension") == "application/octet-stream"


def test_the_download_name_of_a_file() -> None:
    plain = StoredObject("results/1/1_1.mp4", 10, 0.0, '"x"')
    assert plain.content_disposition == 'attachment; filename="1_1.mp4"'
    odd = StoredObject("openapi/vidéo 1.mp4", 10, 0.0, '"x"')
    assert odd.content_disposition == "attachment; filename*=utf-8''vid%C3%A9o%201.mp4"


@pytest.mark.parametrize(
    ("header", "ranges"),
    [
        ("bytes=0-9", [(0, 10)]),
        ("bytes=90-", [(90, 100)]),
        ("bytes=-10", [(90, 100)]),
        ("bytes=-500", [(0, 100)]),
        ("bytes=95-200", [(95, 100)]),
        ("bytes=0-9, 5-19, 50-59", [(0, 20), (50, 60)]),
        ("bytes=50-59,0-9", [(0, 10), (50, 60)]),
        ("BYTES=0-0", [(0, 1)]),
        ("bytes=0-1,x-y", [(0, 2)]),
        ("bytes=" + ",".join(["0-1"] * 101), []),
    ],
)
def test_ranges_of_a_file_of_100_bytes(header: str, ranges: list[tuple[int, int]]) -> None:
    assert parse_ranges(header, 100) == ranges


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("bytes", "Malformed range header."),
        ("items=0-9", "Only support bytes range"),
        ("bytes=", "Range header: range must be requested"),
        ("bytes=x-y", "Range header: range must be requested"),
        ("bytes=9-3", "Range header: start must be less than end"),
    ],
)
def test_malformed_ranges(header: str, message: str) -> None:
    with pytest.raises(MalformedRange, match=message):
        parse_ranges(header, 100)


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=0-9,150-160"])
def test_ranges_past_the_end(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_ranges(header, 100)


def task(finished: datetime | None, expired: datetime | None = None) -> Task:
    return Task(finished_at=finished, expired_at=expired)


def test_when_a_task_is_past_its_retention() -> None:
    week = 7 * 86_400
    assert is_expired(task(NOW - timedelta(days=8)), week, NOW)
    assert not is_expired(task(NOW - timedelta(days=6)), week, NOW)
    assert not is_expired(task(None), week, NOW)  # still running: never
    assert not is_expired(task(NOW - timedelta(days=800)), 0, NOW)  # 0 keeps it
    assert is_expired(task(NOW, expired=NOW), 0, NOW)  # swept: gone whatever the setting


def test_a_sweep_report_adds_up() -> None:
    swept = Swept()
    assert swept.empty
    swept.add_files([])
    assert swept.oldest_upload is None and swept.empty
