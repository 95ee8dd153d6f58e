"""A stored file as an HTTP answer, whichever storage holds it: ``GET`` and ``HEAD``, whole or by
``Range`` (one range, or several as ``multipart/byteranges``), streamed piece by piece.

The headers and the range rules are those of Starlette's ``FileResponse`` (``ETag``,
``Last-Modified``, ``Accept-Ranges``, an ``attachment`` disposition; ``If-Range``; a malformed
range is 400, one past the end 416 with ``Content-Range: bytes */size``; overlapping ranges
merged; more than 100 ranges served whole), so a file answers the same from a local directory
and from a bucket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from email.utils import formatdate
from secrets import token_hex
from typing import Protocol

import anyio
from fastapi import Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

#: More ranges than this in one request are answered with the whole file.
MAX_RANGES = 100

#: The bytes ``[start, end)`` of the file, piece by piece.
Reader = Callable[[int, int], Iterator[bytes]]


class FileInfo(Protocol):
    """What is served of a stored file besides its bytes (``storage.StoredObject``)."""

    @property
    def size(self) -> int: ...

    @property
    def modified(self) -> float: ...

    @property
    def etag(self) -> str: ...

    @property
    def media_type(self) -> str: ...

    @property
    def content_disposition(self) -> str: ...


class MalformedRange(ValueError):
    pass


class RangeNotSatisfiable(ValueError):
    pass


def file_response(
    request: Request, stored: FileInfo, read: Reader, headers: Mapping[str, str]
) -> Response:
    """The answer to ``request`` for ``stored``, read through ``read``; ``headers`` are added
    to every answer."""
    size = stored.size
    common = {
        **headers,
        "accept-ranges": "bytes",
        "content-disposition": stored.content_disposition,
        "last-modified": formatdate(stored.modified, usegmt=True),
        "etag": stored.etag,
    }
    head = request.method.upper() == "HEAD"
    ranges: list[tuple[int, int]] = []
    asked = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if asked is not None and (if_range is None or _unchanged(if_range, common)):
        try:
            ranges = parse_ranges(asked, size)
        except MalformedRange as exc:
            return PlainTextResponse(str(exc), status_code=400, headers=headers)
        except RangeNotSatisfiable:
            return PlainTextResponse(
                "", status_code=416, headers={**headers, "content-range": f"bytes */{size}"}
            )
    if len(ranges) > 1:
        return _multipart(stored, read, ranges, common, head)
    start, end = ranges[0] if ranges else (0, size)
    answer = {**common, "content-length": str(end - start)}
    if ranges:
        answer["content-range"] = f"bytes {start}-{end - 1}/{size}"
    return StreamingResponse(
        _nothing() if head else _pieces(read, start, end),
        status_code=206 if ranges else 200,
        headers=answer,
        media_type=stored.media_type,
    )


def parse_ranges(header: str, size: int) -> list[tuple[int, int]]:
    """The ``[start, end)`` ranges a ``Range`` header asks of a file of ``size`` bytes: sorted
    and merged when there are several; empty when there are too many to serve one by one."""
    units, equals, spec = header.partition("=")
    if not equals:
        raise MalformedRange("Malformed range header.")
    if units.strip().lower() != "bytes":
        raise MalformedRange("Only support bytes range")
    if spec.count(",") + 1 > MAX_RANGES:
        return []
    ranges: list[tuple[int, int]] = []
    for part in (p.strip() for p in spec.split(",")):
        if "-" not in part or part == "-":
            continue
        first, _, last = (s.strip() for s in part.partition("-"))
        try:
            start = int(first) if first else max(size - int(last), 0)
            end = int(last) + 1 if first and last and int(last) < size else size
        except ValueError:
            continue
        ranges.append((start, end))
    if not ranges:
        raise MalformedRange("Range header: range must be requested")
    if any(not 0 <= start < size for start, _ in ranges):
        raise RangeNotSatisfiable()
    if any(start >= end for start, end in ranges):
        raise MalformedRange("Range header: start must be less than end")
    if len(ranges) == 1:
        return ranges
    ordered = sorted(ranges)
    merged = [ordered[0]]
    for start, end in ordered[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged


def _unchanged(if_range: str, headers: Mapping[str, str]) -> bool:
    """Whether ``If-Range`` names the file as it is (a weak tag never does)."""
    return not if_range.startswith("W/") and if_range in (headers["etag"], headers["last-modified"])


def _multipart(
    stored: FileInfo,
    read: Reader,
    ranges: list[tuple[int, int]],
    common: Mapping[str, str],
    head: bool,
) -> Response:
    boundary = token_hex(13)

    def part_head(start: int, end: int) -> bytes:
        return (
            f"--{boundary}\r\nContent-Type: {stored.media_type}\r\n"
            f"Content-Range: bytes {start}-{end - 1}/{stored.size}\r\n\r\n"
        ).encode("latin-1")

    closing = f"--{boundary}--".encode("latin-1")
    length = sum(len(part_head(s, e)) + (e - s) + 2 for s, e in ranges) + len(closing)

    async def body() -> AsyncIterator[bytes]:
        for start, end in ranges:
            yield part_head(start, end)
            async for piece in _pieces(read, start, end):
                yield piece
            yield b"\r\n"
        yield closing

    return StreamingResponse(
        _nothing() if head else body(),
        status_code=206,
        headers={**common, "content-length": str(length)},
        media_type=f"multipart/byteranges; boundary={boundary}",
    )


async def _pieces(read: Reader, start: int, end: int) -> AsyncIterator[bytes]:
    """The pieces of ``read(start, end)``, each read in a worker thread; the reader is closed
    whether it was read to its end or not (the client left)."""
    pieces = read(start, end)
    try:
        while (piece := await run_in_threadpool(next, pieces, None)) is not None:
            yield piece
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(close)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield
