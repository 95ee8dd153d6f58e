"""Sniffing the formats that media fields must recognise in order to refuse them by name."""

from __future__ import annotations

import pytest

from reelgate.media.sniff import UPLOAD_FORMATS, Sniffed, sniff


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"GIF89a\x01\x00\x01\x00", Sniffed("image", "gif")),
        (b"II*\x00\x08\x00\x00\x00", Sniffed("image", "tiff")),
        (b"BM\x36\x00\x0c\x00\x00\x00\x00\x00\x36\x00", Sniffed("image", "bmp")),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", Sniffed("image", "heic")),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", Sniffed("image", "avif")),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00", Sniffed("video", "mov")),
        (b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat", Sniffed("video", "mov")),
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", Sniffed("video", "mp4")),
        (b"<!DOCTYPE html><html>", None),
        (b"BMW is a car brand, not a bitmap", None),
    ],
)
def test_sniff(head: bytes, expected: Sniffed | None) -> None:
    assert sniff(head) == expected


def test_upload_formats_leave_out_what_the_contract_does_not_list() -> None:
    assert {"png", "jpg", "webp", "mp4", "mov", "zip"} <= UPLOAD_FORMATS
    assert not {"gif", "tiff", "bmp", "heic", "avif"} & UPLOAD_FORMATS
