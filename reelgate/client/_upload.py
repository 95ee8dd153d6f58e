"""Local media: finding it in a request, hashing it, and remembering what was uploaded.

A media value is a URL (sent as is), a local file (``Path``, or a ``str`` without a scheme) or
``bytes``. Files are hashed in one streaming pass and sent as a stream, never read whole. An
upload's ``download_url`` is valid for one day, so the same content (by SHA-256) is uploaded at
most once per server within ``reuse_seconds``.
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from reelgate.client._config import DEFAULT_UPLOAD_REUSE_SECONDS
from reelgate.client._errors import RequestValidationError
from reelgate.client._models import UploadedFile

CHUNK = 1024 * 1024
_URL_PREFIXES = ("http://", "https://", "data:", "asset://")


@dataclass(frozen=True)
class LocalMedia:
    """A file or a byte string to upload."""

    path: Path | None = None
    data: bytes | None = None

    @property
    def name(self) -> str:
        if self.path is not None:
            return self.path.name
        return f"upload.{_sniff_ext(self.data or b'')}"

    @property
    def content_type(self) -> str:
        return mimetypes.guess_type(self.name)[0] or "application/octet-stream"

    def open(self) -> BinaryIO:
        if self.path is not None:
            return self.path.open("rb")
        return io.BytesIO(self.data or b"")

    def sha256(self) -> str:
        digest = hashlib.sha256()
        with self.open() as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
        return digest.hexdigest()


def as_local(value: object, where: str, *, str_is_path: bool = True) -> LocalMedia | None:
    """The local media in a field's value, ``None`` for a URL (or a string not taken as a path)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return LocalMedia(data=bytes(value))
    if isinstance(value, Path):
        path = value
    elif isinstance(value, str) and str_is_path and not value.lower().startswith(_URL_PREFIXES):
        path = Path(value).expanduser()
    else:
        return None
    if not path.is_file():
        raise RequestValidationError(
            f"{where}: {str(value)!r} is neither a URL nor an existing file"
        )
    return LocalMedia(path=path)


@dataclass(frozen=True)
class MediaRef:
    """Where a local media value sits in a payload: ``payload[key]`` or ``payload[key][index]``."""

    key: str
    index: int | None
    media: LocalMedia


def find_local_media(payload: dict[str, Any], fields: tuple[str, ...] | None) -> list[MediaRef]:
    """The local media in a payload.

    With ``fields`` (a typed model's media fields), every non-URL value there is local media.
    Without (``run()`` on any endpoint), ``Path`` and ``bytes`` values anywhere at the top level
    are, and so are scheme-less strings in fields named ``…Url`` or ``…Urls``.
    """
    refs: list[MediaRef] = []
    for key, value in payload.items():
        known = key in fields if fields is not None else key.endswith(("Url", "Urls"))
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            where = key if index is None else f"{key}[{index}]"
            local = as_local(item, where, str_is_path=known)
            if local is not None:
                refs.append(MediaRef(key, index, local))
    return refs


def replace_media(payload: dict[str, Any], refs: list[MediaRef], urls: list[str]) -> dict[str, Any]:
    """A copy of ``payload`` with each local media value replaced by its uploaded URL."""
    body = {k: list(v) if isinstance(v, list) else v for k, v in payload.items()}
    for ref, url in zip(refs, urls, strict=True):
        if ref.index is None:
            body[ref.key] = url
        else:
            body[ref.key][ref.index] = url
    return body


class UploadCache(Protocol):
    """Remembers uploads by server and content hash, for as long as their links stay valid."""

    def get(self, base_url: str, sha256: str) -> UploadedFile | None: ...

    def put(self, base_url: str, uploaded: UploadedFile) -> None: ...


class MemoryUploadCache:
    """The default ``UploadCache``: in memory, shared by the clients it is given to."""

    def __init__(self, reuse_seconds: float = DEFAULT_UPLOAD_REUSE_SECONDS) -> None:
        self.reuse_seconds = reuse_seconds
        self._items: dict[tuple[str, str], tuple[float, UploadedFile]] = {}
        self._lock = threading.Lock()

    def get(self, base_url: str, sha256: str) -> UploadedFile | None:
        with self._lock:
            item = self._items.get((base_url, sha256))
            if item is None:
                return None
            if time.time() - item[0] >= self.reuse_seconds:
                del self._items[(base_url, sha256)]
                return None
            return item[1]

    def put(self, base_url: str, uploaded: UploadedFile) -> None:
        with self._lock:
            self._items[(base_url, uploaded.sha256)] = (time.time(), uploaded)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[UploadedFile]:
        return iter([v[1] for v in self._items.values()])


def _sniff_ext(head: bytes) -> str:
    """A file extension from the first bytes, so uploaded bytes get a meaningful name."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[4:8] == b"ftyp":
        return "mov" if head[8:12] == b"qt  " else "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "mkv"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"ID3"):
        return "mp3"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    return "bin"
