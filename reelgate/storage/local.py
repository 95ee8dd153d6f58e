"""Local-directory storage: uploads and results under one root, written atomically."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from reelgate.core.errors import StorageError
from reelgate.storage.base import CHUNK_BYTES, StoredObject, checked_key, key_parts


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        # Incoming files wait in the root itself, so that storing one is a rename.
        self.spool_dir: Path | None = self.root

    def path(self, key: str) -> Path:
        """The file behind ``key``; refuses keys that would leave the root."""
        return self.root.joinpath(*checked_key(key))

    def local_path(self, key: str) -> Path | None:
        return self.path(key)

    def exists(self, key: str) -> bool:
        parts = key_parts(key)
        return parts is not None and self.root.joinpath(*parts).is_file()

    def stat(self, key: str) -> StoredObject | None:
        parts = key_parts(key)
        if parts is None:
            return None
        try:
            found = self.root.joinpath(*parts).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StorageError(f"could not read {key}: {exc}") from exc
        if not stat.S_ISREG(found.st_mode):
            return None
        # The entity tag Starlette gives a file: its modification time and size, hashed.
        tag = hashlib.md5(f"{found.st_mtime}-{found.st_size}".encode(), usedforsecurity=False)
        return StoredObject(key, found.st_size, found.st_mtime, f'"{tag.hexdigest()}"')

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        path = self.path(key)
        try:
            with path.open("rb") as f:
                f.seek(start)
                left = None if end is None else end - start
                while left is None or left > 0:
                    chunk = f.read(CHUNK_BYTES if left is None else min(CHUNK_BYTES, left))
                    if not chunk:
                        return
                    if left is not None:
                        left -= len(chunk)
                    yield chunk
        except OSError as exc:
            raise StorageError(f"could not read {key}: {exc}") from exc

    def download(self, key: str, dest: Path) -> bool:
        if not self.exists(key):
            return False
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.path(key), dest)
        except FileNotFoundError:
            dest.unlink(missing_ok=True)
            return False
        except OSError as exc:
            dest.unlink(missing_ok=True)
            raise StorageError(f"could not copy {key}: {exc}") from exc
        return True

    def put_file(self, key: str, source: Path, *, move: bool = False) -> int:
        """Store ``source`` under ``key`` (atomically: readers never see half a file)."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        os.close(fd)
        try:
            if move:
                shutil.move(str(source), tmp)
            else:
                shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise StorageError(f"could not store {key}: {exc}") from exc
        return target.stat().st_size

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            parts = key_parts(key)
            if parts is None:
                continue
            path = self.root.joinpath(*parts)
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise StorageError(f"could not delete {key}: {exc}") from exc
            # A task's folder goes with its last file (one that is not empty stays).
            for folder in path.parents:
                if folder == self.root:
                    break
                try:
                    folder.rmdir()
                except OSError:
                    break

    def delete_folder(self, folder: str) -> None:
        parts = key_parts(folder)
        if parts is None:
            return
        top = self.root.joinpath(*parts)
        try:
            for where, folders, files in os.walk(top, topdown=False):
                here = Path(where)
                for name in files:
                    (here / name).unlink(missing_ok=True)
                for name in folders:
                    _remove_folder(here / name)
            _remove_folder(top)
        except OSError as exc:
            raise StorageError(f"could not delete {folder}: {exc}") from exc
        # Its parents go with it when it was their last content (as for ``delete``).
        for parent in top.parents:
            if parent == self.root:
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def presigned_url(self, key: str, expires_in: int) -> str:
        raise StorageError("local storage has no presigned links; reelgate serves its files")

    def check(self) -> str:
        # A file written and removed: permissions alone do not tell (root ignores them, a
        # read-only mount or an immutable folder refuses anyway).
        try:
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".ready-"):
                pass
        except OSError as exc:
            return f"{self.root} cannot be written: {exc.strerror or exc}"
        return ""

    def close(self) -> None:
        return None


def _remove_folder(path: Path) -> None:
    """Remove an empty folder; one that is gone already is no error, nor is a file of that name
    (a key of its own, not in the folder)."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        path.rmdir()
