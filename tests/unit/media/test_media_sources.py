"""Sources other than plain downloads: data: URIs, reelgate's own links, unsupported schemes."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import reelgate.media
from reelgate.config import MediaSettings
from reelgate.core.errors import FileProcessingFailed, FileTooLarge, InvalidParameters, InvalidUrl
from reelgate.media import FetchedMedia, MediaFetcher
from tests.unit.media.media_support import image_bytes


def _data_uri(body: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(body).decode()}"


# --- data: URIs ---------------------------------------------------------------------------------


def test_data_uri_image(guarded: MediaFetcher, dest: Path) -> None:
    body = image_bytes(300, 400)
    media = guarded.fetch_image(_data_uri(body), "firstImageUrl", dest)
    assert (media.format, media.size, media.width, media.height) == ("png", len(body), 300, 400)
    assert media.path == dest / "firstImageUrl.png"
    assert media.path.read_bytes() == body


def test_data_uri_mime_type_is_not_trusted(guarded: MediaFetcher, dest: Path) -> None:
    media = guarded.fetch_image(
        _data_uri(image_bytes(300, 300, "JPEG"), "image/gif"), "firstImageUrl", dest
    )
    assert media.format == "jpg"


def test_data_uri_video(guarded: MediaFetcher, dest: Path, videos: Callable[..., bytes]) -> None:
    media = guarded.fetch_video(_data_uri(videos(audio=True), "video/mp4"), "videoUrl", dest)
    assert (media.format, media.has_audio) == ("mp4", True)


@pytest.mark.parametrize(
    ("uri", "detail"),
    [
        ("data:image/png;base64,iVBORw0K***", "data: URI payload is not valid base64"),
        ("data:image/png;base64,iVBORw0KGgo", "data: URI payload is not valid base64"),
        ("data:image/png,%89PNG", "only base64 data: URIs are accepted"),
        ("data:image/png;base64", "data: URI has no ',' before its payload"),
    ],
)
def test_malformed_data_uris(guarded: MediaFetcher, dest: Path, uri: str, detail: str) -> None:
    with pytest.raises(InvalidUrl) as info:
        guarded.fetch_image(uri, "firstImageUrl", dest)
    assert info.value.code == "1001"
    assert (info.value.detail or "").startswith(f"firstImageUrl: {detail}")
    assert not dest.exists() or not any(dest.iterdir())


def test_data_uri_over_the_cap_is_refused_before_decoding(
    tripwire_client: httpx.Client, dest: Path
) -> None:
    settings = MediaSettings(max_input_bytes=1000)
    uri = "data:image/png;base64," + "A" * 1340  # about 1005 bytes once decoded
    with MediaFetcher(settings, allow_private_networks=False, http_client=tripwire_client) as f:
        with pytest.raises(FileTooLarge) as info:
            f.fetch_image(uri, "firstImageUrl", dest)
        assert info.value.code == "1008"
        assert (info.value.detail or "").endswith("at most 0.0 MB (1000 bytes) are accepted")
        # Not valid base64 either, which proves the length was judged before decoding.
        with pytest.raises(FileTooLarge):
            f.fetch_image("data:image/png;base64," + "*" * 2000, "firstImageUrl", dest)


def test_data_uri_that_is_not_an_image(guarded: MediaFetcher, dest: Path) -> None:
    with pytest.raises(FileProcessingFailed):
        guarded.fetch_image(_data_uri(b"<html></html>", "image/png"), "firstImageUrl", dest)


# --- reelgate's own links -----------------------------------------------------------------------


def test_own_url_is_resolved_without_http(
    tmp_path: Path, settings: MediaSettings, tripwire_client: httpx.Client, dest: Path
) -> None:
    stored = tmp_path / "storage" / "openapi" / "abc.png"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(image_bytes(500, 300))
    own = "http://127.0.0.1:8000/files/openapi/abc.png?expires=1&sig=x"

    def resolve(url: str, dest: Path) -> Path | None:
        return stored if url == own else None

    with MediaFetcher(
        settings,
        allow_private_networks=False,
        own_file=resolve,
        http_client=tripwire_client,
    ) as f:
        media = f.fetch_image(own, "firstImageUrl", dest)
    assert media == FetchedMedia(
        path=stored,
        field="firstImageUrl",
        kind="image",
        format="png",
        size=stored.stat().st_size,
        width=500,
        height=300,
        duration=None,
        has_audio=False,
    )
    assert stored.exists()  # the stored upload is used in place, neither copied nor moved
    assert not dest.exists()


def test_own_url_that_breaks_a_rule_leaves_the_stored_file_alone(
    tmp_path: Path, settings: MediaSettings, tripwire_client: httpx.Client, dest: Path
) -> None:
    stored = tmp_path / "small.png"
    stored.write_bytes(image_bytes(100, 100))
    with (
        MediaFetcher(
            settings,
            allow_private_networks=False,
            own_file=lambda url, dest: stored,
            http_client=tripwire_client,
        ) as f,
        pytest.raises(InvalidParameters),
    ):
        f.fetch_image("https://reelgate.example/u/small.png", "firstImageUrl", dest)
    assert stored.exists()


def test_own_file_over_the_cap(tmp_path: Path, tripwire_client: httpx.Client, dest: Path) -> None:
    stored = tmp_path / "big.png"
    stored.write_bytes(image_bytes(400, 400, noise=True))
    settings = MediaSettings(max_input_bytes=1000)
    with (
        MediaFetcher(
            settings,
            allow_private_networks=False,
            own_file=lambda url, dest: stored,
            http_client=tripwire_client,
        ) as f,
        pytest.raises(FileTooLarge),
    ):
        f.fetch_image("https://reelgate.example/u/big.png", "firstImageUrl", dest)
    assert stored.exists()


def test_own_url_with_a_bad_signature(
    settings: MediaSettings, tripwire_client: httpx.Client, dest: Path
) -> None:
    def resolve(url: str, dest: Path) -> Path | None:
        raise InvalidUrl("the link has expired")

    with (
        MediaFetcher(
            settings,
            allow_private_networks=False,
            own_file=resolve,
            http_client=tripwire_client,
        ) as f,
        pytest.raises(InvalidUrl) as info,
    ):
        f.fetch_image("https://reelgate.example/u/x.png", "imageUrls[0]", dest)
    assert info.value.detail == "imageUrls[0]: the link has expired"


def test_own_url_whose_file_is_gone(
    tmp_path: Path, settings: MediaSettings, tripwire_client: httpx.Client, dest: Path
) -> None:
    with (
        MediaFetcher(
            settings,
            allow_private_networks=False,
            own_file=lambda url, dest: tmp_path / "deleted.png",
            http_client=tripwire_client,
        ) as f,
        pytest.raises(InvalidUrl, match="no longer exists"),
    ):
        f.fetch_image("https://reelgate.example/u/deleted.png", "firstImageUrl", dest)


# --- schemes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("ftp://example.com/a.png", "ftp:"),
        ("file:///etc/passwd", "file:"),
        ("asset://1234", "asset:"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "gopher:"),
        ("just-a-name.png", "just-a-name.png"),
        ("", ""),
    ],
)
def test_unsupported_schemes(guarded: MediaFetcher, dest: Path, url: str, shown: str) -> None:
    with pytest.raises(InvalidUrl) as info:
        guarded.fetch_image(url, "firstImageUrl", dest)
    assert info.value.detail == (
        f"firstImageUrl: unsupported URL {shown}; use an http(s) URL, an uploaded file's link "
        f"or a base64 data: URI"
    )


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("http://", "URL http:// has no host"),
        ("https:///a.png", "URL https:///a.png has no host"),
        ("http://[::1/a.png", "http://[::1/a.png is not a valid URL"),
    ],
)
def test_malformed_http_urls(guarded: MediaFetcher, dest: Path, url: str, detail: str) -> None:
    with pytest.raises(InvalidUrl) as info:
        guarded.fetch_image(url, "firstImageUrl", dest)
    assert (info.value.detail or "").startswith(f"firstImageUrl: {detail}")


def test_public_surface() -> None:
    assert reelgate.media.__all__ == ["FetchedMedia", "MediaFetcher"]


def test_a_stored_file_read_in_place_is_checked_once_until_it_changes(
    tmp_path: Path,
    settings: MediaSettings,
    tripwire_client: httpx.Client,
    dest: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tasks that reuse one upload do not decode it again; a file that changed is checked
    afresh (and refused when it no longer decodes)."""
    stored = tmp_path / "shared.png"
    stored.write_bytes(image_bytes(400, 320))
    decodes: list[Path] = []
    real_inspect = reelgate.media.probe.inspect_image

    def counting(path: Path, fmt: str, *, max_decoded_bytes: int) -> Any:
        decodes.append(path)
        return real_inspect(path, fmt, max_decoded_bytes=max_decoded_bytes)

    monkeypatch.setattr(reelgate.media.probe, "inspect_image", counting)
    with MediaFetcher(
        settings,
        allow_private_networks=False,
        own_file=lambda url, dest: stored,
        http_client=tripwire_client,
    ) as f:
        first = f.fetch_image("https://reelgate.example/u/shared.png", "firstImageUrl", dest)
        again = f.fetch_image("https://reelgate.example/u/shared.png", "lastImageUrl", dest)
        assert (again.field, again.width, again.height) == ("lastImageUrl", 400, 320)
        assert again == dataclasses.replace(first, field="lastImageUrl")
        assert decodes == [stored]
        # Replaced by a file that does not decode (a new inode and mtime): checked, refused.
        broken = tmp_path / "broken.png"
        broken.write_bytes(image_bytes(400, 320)[:300])
        broken.replace(stored)
        with pytest.raises(FileProcessingFailed):
            f.fetch_image("https://reelgate.example/u/shared.png", "firstImageUrl", dest)
        assert decodes == [stored, stored]
