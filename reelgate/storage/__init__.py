"""Where uploads and results are kept (``base.Storage``), and the signed links to them."""

from __future__ import annotations

from reelgate.config import Settings
from reelgate.core.errors import StorageError
from reelgate.storage.base import Storage, StoredObject
from reelgate.storage.local import LocalStorage

__all__ = ["LocalStorage", "Storage", "StoredObject", "open_storage"]


def open_storage(settings: Settings) -> Storage:
    """The storage ``REELGATE_STORAGE_URL`` names: a local directory (the default) or an S3
    bucket."""
    bucket = settings.s3_bucket()
    if bucket is None:
        return LocalStorage(settings.resolved_storage_dir())
    try:
        from reelgate.storage.s3 import S3Storage
    except ImportError as exc:
        raise StorageError(
            f"{settings.storage_url} needs boto3: install reelgate[s3] ({exc})"
        ) from exc
    return S3Storage(*bucket, settings.s3)
