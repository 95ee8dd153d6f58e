"""Hostile media, generated in code at test time: small on disk, expensive if decoded naively.

Each generator returns bytes; ``corpus`` lists every hostile input a task can be given, with the
code and message its task must fail with. Inputs that are server behaviours rather than files
(a redirect to a private address, a server that never finishes) name a route of
``tests.unit.media.media_support.MediaServer``.
"""

from __future__ import annotations

import functools
import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from urllib.parse import quote

import av
import numpy as np
from PIL import Image

#: Rows compressed at once: the generators never hold a whole decoded image.
_ROWS_PER_CHUNK = 64


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.cache
def png_of_zeros(
    width: int, height: int, *, depth: int = 8, colour: int = 2, rows: int | None = None
) -> bytes:
    """A valid PNG of black pixels (``colour``: 0 grey, 2 RGB, 4 grey and alpha, 6 RGBA), its
    pixel data deflate-compressed row block by row block. With ``rows``, only that many rows
    are written: the header still declares ``height``, which is all a decoder allocates from."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    row = b"\0" * (1 + (width * channels * depth + 7) // 8)  # filter byte, then samples
    # Run-length matching finds the zeros as well as the full search does, twice as fast.
    compressor = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    parts = []
    written = height if rows is None else rows
    for start in range(0, written, _ROWS_PER_CHUNK):
        parts.append(compressor.compress(row * min(_ROWS_PER_CHUNK, written - start)))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )


def png_bomb_by_pixels() -> bytes:
    """20000 x 20000 16-bit RGB (2.4 GB decoded), a few kilobytes: refused by its pixel count."""
    return png_of_zeros(20000, 20000, depth=16, colour=2, rows=256)


def png_bomb_by_depth() -> bytes:
    """6000 x 6000 16-bit RGBA: 36 megapixels, under the pixel cap, but 288 MB decoded (over
    the default 256 MB) from a 280 kB file. A complete, valid PNG."""
    return png_of_zeros(6000, 6000, depth=16, colour=6)


def image(width: int, height: int, fmt: str = "PNG") -> bytes:
    """An ordinary image: a gradient."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)
    pixels[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, fmt)
    return buffer.getvalue()


SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="20000" '
    b'height="20000"><rect width="100%" height="100%"/></svg>\n'
)
HTML = b"<!doctype html>\n<html><body><img src=x onerror=alert(1)></body></html>\n"


def zip_archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("image.png", image(400, 300))
    return buffer.getvalue()


def mp4(
    tmp_dir: Path, runs: list[tuple[int, int, int, bool]], *, fps: int = 10, faststart: bool = False
) -> bytes:
    """An H.264 MP4 made of ``(width, height, frames, noise)`` runs: a change of size starts a
    new stream header inside the stream, as a camera or an attacker may. Noise frames each carry
    their own data (so a cut hits frame data); the others are flat and tiny."""
    rng = np.random.default_rng(7)
    raw = io.BytesIO()
    for width, height, frames, noise in runs:
        with av.open(raw, "w", format="h264") as out:
            stream = out.add_stream(
                "libx264", rate=fps, options={"preset": "ultrafast", "x264-params": "keyint=10"}
            )
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for index in range(frames):
                shape = (height * 3 // 2, width)
                planes = (
                    rng.integers(0, 256, shape, dtype=np.uint8)
                    if noise
                    else np.full(shape, 16 * index % 256, dtype=np.uint8)
                )
                out.mux(stream.encode(av.VideoFrame.from_ndarray(planes, format="yuv420p")))
            out.mux(stream.encode())
    raw.seek(0)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    path = tmp_dir / f"clip-{len(list(tmp_dir.iterdir()))}.mp4"
    options = {"movflags": "faststart"} if faststart else {}
    with (
        av.open(raw, mode="r", format="h264") as source,
        av.open(str(path), "w", format="mp4", options=options) as target,
    ):
        copy = target.add_stream_from_template(source.streams.video[0])
        copy.time_base = Fraction(1, fps)
        packets = (p for p in source.demux(source.streams.video[0]) if p.size)
        for index, packet in enumerate(packets):
            # Frame numbers as timestamps (raw H.264 has none), in a time base of their own:
            # the muxer may change the stream's, and converts from the packet's.
            packet.stream = copy
            packet.pts = packet.dts = index
            packet.duration = 1
            packet.time_base = Fraction(1, fps)
            target.mux(packet)
    return path.read_bytes()


def truncated_mp4(tmp_dir: Path) -> bytes:
    """Cut in half with its index at the end: the index is gone."""
    body = mp4(tmp_dir, [(64, 48, 40, True)])
    return body[: len(body) // 2]


def truncated_faststart_mp4(tmp_dir: Path) -> bytes:
    """Cut with its index at the front: it opens, its first frames decode, the rest is gone."""
    body = mp4(tmp_dir, [(64, 48, 40, True)], faststart=True)
    return body[: len(body) * 6 // 10]


def size_switching_mp4(tmp_dir: Path) -> bytes:
    """Declares 64 x 48 and switches to 2048 x 2048 frames after two seconds (3.2 s in all)."""
    return mp4(tmp_dir, [(64, 48, 20, False), (2048, 2048, 12, False)], faststart=True)


# --- the corpus ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hostile:
    name: str
    #: ``image`` (sent as ``firstImageUrl``) or ``video`` (``videoUrl`` of an edit).
    field: str
    #: The errorCode its task fails with, and a part of the errorMessage.
    code: str
    message: str
    #: The file served at ``/f/<name>``, with this Content-Type ...
    body: bytes = b""
    content_type: str = "application/octet-stream"
    #: ... or a route of the media server instead.
    route: str | None = None


def corpus(tmp_dir: Path, good: str) -> list[Hostile]:
    """Every hostile input, with the answer its task must end with; ``good`` names a served
    PNG that the lying routes lie about."""
    metadata = quote("http://169.254.169.254/latest/meta-data/", safe="")
    private = quote("http://10.0.0.7:8080/admin", safe="")
    named = quote("http://internal.test/image.png", safe="")
    return [
        Hostile("truncated.mp4", "video", "1013", "could not be decoded", truncated_mp4(tmp_dir)),
        Hostile(
            "truncated-faststart.mp4",
            "video",
            "1013",
            "videoUrl: the video could not be decoded to its end",
            truncated_faststart_mp4(tmp_dir),
        ),
        Hostile(
            "switching.mp4",
            "video",
            "1013",
            "videoUrl: the video could not be decoded to its end",
            size_switching_mp4(tmp_dir),
        ),
        Hostile("pixels.png", "image", "1007", "megapixels", png_bomb_by_pixels(), "image/png"),
        Hostile("depth.png", "image", "1007", "once decoded", png_bomb_by_depth(), "image/png"),
        Hostile("drawing.png", "image", "1013", "HTML or XML", SVG, "image/svg+xml"),
        Hostile("page.jpg", "image", "1013", "HTML or XML", HTML, "image/jpeg"),
        Hostile("archive.png", "image", "1007", "got zip archive", zip_archive(), "image/png"),
        Hostile("empty.png", "image", "1013", "the file is empty", b"", "image/png"),
        Hostile("metadata", "image", "1001", "non-public address", route=f"/to?url={metadata}"),
        Hostile("private", "image", "1001", "non-public address", route=f"/to?url={private}"),
        # The test's resolver answers a private address for this name.
        Hostile("named", "image", "1001", "internal.test (10.1.2.3)", route=f"/to?url={named}"),
        Hostile("forever", "image", "1001", "timed out", route="/forever"),
        Hostile("slow-headers", "image", "1001", "timed out", route="/trickle-headers"),
        Hostile("length-short", "image", "1001", "broke off", route=f"/lie/short/{good}"),
        Hostile("length-long", "image", "1013", "could not be decoded", route=f"/lie/long/{good}"),
        Hostile("length-huge", "image", "1008", "at most 50.0 MB", route="/huge"),
    ]
