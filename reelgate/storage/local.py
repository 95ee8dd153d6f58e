"""Local-directory storage: uploads and results under one root, written atomically."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from reelgate.core.errors import StorageError


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """The file behind ``key``; refuses keys that would leave the root."""
        pure = PurePosixPath(key)
        if pure.is_absolute() or ".." in pure.parts or not pure.parts:
            raise StorageError(f"invalid storage key {key!r}")
        return self.root.joinpath(*pure.parts)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def check(self) -> str:
        # A file written and removed: permissions alone do not tell (root ignores them, a
        # read-only mount or an immutable folder refuses anyway).
        try:
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".ready-"):
                pass
        except OSError as exc:
            return f"{self.root} cannot be written: {exc.strerror or exc}"
        return ""

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
