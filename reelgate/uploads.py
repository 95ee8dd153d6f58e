"""An upload as it arrives: its bytes hashed and written to a temporary file as they come (in the
storage root for local storage, so that storing it is a rename), refused the moment they pass
the cap, stored under their content hash once the file is complete.

The API writes the chunks it parses (``api/forms.py``) one by one, so nothing is held in memory
and nothing is written before the key was checked; a refused or abandoned upload leaves no file
behind (``discard``).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from reelgate.core.errors import FileProcessingFailed, FileTooLarge, InvalidParameters
from reelgate.media.sniff import UPLOAD_FORMATS, sniff
from reelgate.runtime import Runtime
from reelgate.store import expiry, repo
from reelgate.store.tables import utcnow

#: Length of the column the original file name is stored in.
MAX_FILE_NAME = 300
#: Bytes kept from the start of the file to tell its type.
_HEAD = 64
_MB = 1024 * 1024


def upload_too_large(max_bytes: int) -> FileTooLarge:
    size = f"{max_bytes // _MB} MB" if max_bytes % _MB == 0 else f"{max_bytes} bytes"
    return FileTooLarge(f"uploads are limited to {size}")


class IncomingUpload:
    """One file being received for the key ``key_id``; ``write`` each chunk, then ``finish``
    (or ``discard``). Blocking: call it from a worker thread."""

    def __init__(self, runtime: Runtime, key_id: int, filename: str, *, max_bytes: int) -> None:
        if len(filename) > MAX_FILE_NAME:
            raise InvalidParameters(f"the file name is longer than {MAX_FILE_NAME} characters")
        self._runtime = runtime
        self._key_id = key_id
        self._filename = filename
        self._max_bytes = max_bytes
        self._digest = hashlib.sha256()
        self._head = b""
        self.size = 0
        self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed by finish or discard)
            dir=runtime.storage.spool_dir, prefix=".upload-", delete=False
        )
        self.path = Path(self._file.name)

    def write(self, chunk: bytes) -> None:
        """Add the next bytes; past the cap the upload is discarded and refused (1008)."""
        self.size += len(chunk)
        if self.size > self._max_bytes:
            self.discard()
            raise upload_too_large(self._max_bytes)
        if len(self._head) < _HEAD:
            self._head += chunk[:_HEAD]
        self._digest.update(chunk)
        self._file.write(chunk)

    def discard(self) -> None:
        """Drop what was received (a no-op once finished or discarded)."""
        self._file.close()
        self.path.unlink(missing_ok=True)

    def finish(self) -> tuple[str, str, int]:
        """Store the complete file by content hash; returns (storage key, kind, size).

        The upload's row is written first (under ``expiry.lock_file``, which waits for a
        retention sweep deleting the same file), then the file is stored unless it already is:
        once the row is in, no sweep deletes the file, and one that just did finds it stored
        again.
        """
        try:
            self._file.close()
            if self.size == 0:
                raise FileProcessingFailed("the uploaded file is empty")
            kind = sniff(self._head)
            if kind is None or kind.ext not in UPLOAD_FORMATS:
                raise FileProcessingFailed(
                    "unsupported file type: expected an image (JPG, PNG, WEBP), video (MP4, MOV, "
                    "MKV, AVI), audio (MP3, WAV, FLAC) or ZIP"
                )
            digest = self._digest.hexdigest()
            key = f"openapi/{digest}.{kind.ext}"
            with self._runtime.db.write() as session:
                expiry.lock_file(session, key)
                repo.add_upload(
                    session,
                    api_key_id=self._key_id,
                    storage_key=key,
                    kind=kind.kind,
                    size=self.size,
                    sha256=digest,
                    original_name=self._filename,
                    created_at=utcnow(),
                )
            storage = self._runtime.storage
            if not storage.exists(key):  # the same bytes are stored once
                storage.put_file(key, self.path, move=True)
        finally:
            self.path.unlink(missing_ok=True)
        return key, kind.kind, self.size
