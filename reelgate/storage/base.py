"""The storage interface: where uploads and results live, by key (``openapi/<sha256>.png``,
``results/<task id>/<attempt>/<task id>_1.mp4``).

A task's files are all in its folder, ``results/<task id>/``: each claim of it stores its outputs
in a folder of its own (``result_key``), so a worker that lost the task (stalled past its lease,
then woke up) never writes over the files of the claim that finished it; the stills
``/v1/videos`` makes of a result sit beside those folders. Whoever deletes a task's files deletes
the whole folder (``Storage.delete_folder``), with what any lost claim left there.

Two implementations: ``LocalStorage`` (a directory, the default) and ``S3Storage`` (a bucket
and a key prefix), chosen by ``REELGATE_STORAGE_URL`` (``reelgate.storage.open_storage``).
Files go in and out as streams: a stored file is never held in memory whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import quote

from reelgate.core.errors import StorageError

#: The size of the pieces a stored file is read in.
CHUNK_BYTES = 64 * 1024

#: The type a stored file is served as, by extension; any other file is served as bytes to save.
SERVED_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "mkv": "video/x-matroska",
    "avi": "video/x-msvideo",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "flac": "audio/flac",
    "zip": "application/zip",
}


def task_folder(task_id: int) -> str:
    """The folder that holds every file of a task: each claim's outputs, and its stills."""
    return f"results/{task_id}"


def result_key(task_id: int, claim: str, n: int, output_type: str) -> str:
    """Where output ``n`` of a task is stored by its claim ``claim`` (see ``claim_folder``). The
    file's own name, ``<task id>_<n>.<type>``, is the one users see at the end of the link."""
    return f"{task_folder(task_id)}/{claim}/{task_id}_{n}.{output_type}"


def claim_folder(attempt: int, token: str) -> str:
    """The folder name of one claim of a task: its attempt number and a token of the claim's
    own (a task handed back at shutdown is claimed again with the same attempt number)."""
    return f"{attempt}-{token}"


def media_type(key: str) -> str:
    """The type ``key`` is served as: the one its extension names, or bytes to save."""
    extension = PurePosixPath(key).suffix.lower().removeprefix(".")
    return SERVED_TYPES.get(extension, "application/octet-stream")


def key_parts(key: str) -> tuple[str, ...] | None:
    """The parts of a valid key (relative, no ``..``, not empty); None for any other."""
    pure = PurePosixPath(key)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        return None
    return pure.parts


def checked_key(key: str) -> tuple[str, ...]:
    parts = key_parts(key)
    if parts is None:
        raise StorageError(f"invalid storage key {key!r}")
    return parts


@dataclass(frozen=True)
class StoredObject:
    """A stored file as a link serves it."""

    key: str
    size: int
    #: Unix time of its last write.
    modified: float
    #: An entity tag that changes with the content, quoted as HTTP sends it.
    etag: str

    @property
    def name(self) -> str:
        return PurePosixPath(self.key).name

    @property
    def media_type(self) -> str:
        return media_type(self.key)

    @property
    def content_disposition(self) -> str:
        """A download under its own name (as Starlette's ``FileResponse`` words it)."""
        quoted = quote(self.name)
        if quoted != self.name:
            return f"attachment; filename*=utf-8''{quoted}"
        return f'attachment; filename="{self.name}"'


class Storage(Protocol):
    """Files by key. Thread-safe. A key that is not valid (absolute, with ``..``) names no file:
    reading it finds nothing, writing it raises ``StorageError``. So does any failure of the
    storage itself."""

    #: Where incoming files wait before they are stored: for a local directory, a folder on the
    #: same file system (storing is then a rename); None for the system's temporary folder.
    spool_dir: Path | None

    def put_file(self, key: str, source: Path, *, move: bool = False) -> int:
        """Store ``source`` under ``key`` whole, or not at all (readers never see half a file);
        with ``move``, ``source`` is gone afterwards. Returns the size stored."""
        ...

    def exists(self, key: str) -> bool: ...

    def stat(self, key: str) -> StoredObject | None:
        """The file under ``key``, or None when there is none."""
        ...

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes ``[start, end)`` of the file under ``key``, in pieces as they arrive.

        Nothing is read before the first piece is asked for; close the iterator to stop early.
        """
        ...

    def local_path(self, key: str) -> Path | None:
        """The file itself when it is on this machine's file system (local storage), whether or
        not it exists; None when files must be copied out (``download``)."""
        ...

    def download(self, key: str, dest: Path) -> bool:
        """Copy the file under ``key`` to ``dest``; False (and no ``dest``) when there is none."""
        ...

    def delete(self, keys: Iterable[str]) -> None:
        """Delete the files under ``keys``; keys with no file are no error."""
        ...

    def delete_folder(self, folder: str) -> None:
        """Delete every file whose key starts with ``folder/`` (``results/7`` takes
        ``results/7/1-ab12cd34/7_1.mp4``, not ``results/70/…``); none is no error."""
        ...

    def presigned_url(self, key: str, expires_in: int) -> str:
        """A URL of the storage's own that fetches ``key`` for ``expires_in`` seconds (S3);
        ``StorageError`` where the storage has none."""
        ...

    def check(self) -> str:
        """Why the storage cannot be used now, or ``""`` when it can (readiness)."""
        ...

    def close(self) -> None: ...
