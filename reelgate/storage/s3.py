"""S3 storage: uploads and results in a bucket, under a key prefix (install ``reelgate[s3]``).

Files go up with boto3's managed transfer, in parts of ``part_size_bytes`` read from the file on
disk as they are sent, and come down as ranged ``GetObject`` streams read piece by piece: memory
stays at a few parts whatever the file's size. boto3's and botocore's errors stop here and
become ``StorageError``.

Works with AWS and with S3-compatible servers (``endpoint_url``, ``path_style``). Checksums are
sent only where S3 requires them, as servers other than AWS may not know the newer ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from reelgate.config import S3Settings
from reelgate.core.errors import StorageError
from reelgate.storage.base import CHUNK_BYTES, StoredObject, checked_key, key_parts, media_type

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: What boto3 raises when a request fails, or a transfer does.
_FAILURES = (ClientError, BotoCoreError, Boto3Error)
#: The most keys one ``DeleteObjects`` request takes.
_DELETE_BATCH = 1000


class S3Storage:
    def __init__(self, bucket: str, prefix: str, settings: S3Settings) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.spool_dir: Path | None = None
        config = Config(
            region_name=settings.region,
            signature_version="s3v4",
            s3={"addressing_style": "path" if settings.path_style else "auto"},
            retries={"mode": "standard", "max_attempts": settings.max_attempts},
            max_pool_connections=max(10, 4 * settings.max_concurrency),
            connect_timeout=10,
            read_timeout=60,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        secret, token = settings.secret_access_key, settings.session_token
        self._client: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.endpoint_url,
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            aws_session_token=token.get_secret_value() if token else None,
            config=config,
        )
        self._transfer = TransferConfig(
            multipart_threshold=settings.part_size_bytes,
            multipart_chunksize=settings.part_size_bytes,
            max_concurrency=settings.max_concurrency,
        )

    def __repr__(self) -> str:
        return f"S3Storage(s3://{self.bucket}/{self.prefix})"

    def _name(self, key: str) -> str:
        """The object's name in the bucket."""
        name = "/".join(checked_key(key))
        return f"{self.prefix}/{name}" if self.prefix else name

    def local_path(self, key: str) -> Path | None:
        return None

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def stat(self, key: str) -> StoredObject | None:
        if key_parts(key) is None:
            return None
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self._name(key))
        except _FAILURES as exc:
            if _missing(exc):
                return None
            raise _failed(f"could not look up {key}", exc) from exc
        return StoredObject(
            key, head["ContentLength"], head["LastModified"].timestamp(), head["ETag"]
        )

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if end is not None and end <= start:
            return
        extra: dict[str, Any] = {}
        if start or end is not None:
            extra["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self._name(key), **extra)["Body"]
        except _FAILURES as exc:
            raise _failed(f"could not read {key}", exc) from exc
        try:
            yield from body.iter_chunks(CHUNK_BYTES)
        except _FAILURES as exc:
            raise _failed(f"could not read {key}", exc) from exc
        finally:
            body.close()

    def download(self, key: str, dest: Path) -> bool:
        if key_parts(key) is None:
            return False
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            self._client.download_file(
                self.bucket, self._name(key), str(dest), Config=self._transfer
            )
        except (*_FAILURES, OSError) as exc:
            dest.unlink(missing_ok=True)
            if _missing(exc):
                return False
            raise _failed(f"could not download {key}", exc) from exc
        return True

    def put_file(self, key: str, source: Path, *, move: bool = False) -> int:
        name = self._name(key)
        try:
            size = source.stat().st_size
            self._client.upload_file(
                str(source),
                self.bucket,
                name,
                # What a presigned link serves it as: the type and download of reelgate's links.
                ExtraArgs={
                    "ContentType": media_type(key),
                    "ContentDisposition": StoredObject(key, size, 0, "").content_disposition,
                },
                Config=self._transfer,
            )
        except (*_FAILURES, OSError) as exc:
            raise _failed(f"could not store {key}", exc) from exc
        if move:
            source.unlink(missing_ok=True)
        return size

    def delete(self, keys: Iterable[str]) -> None:
        self._delete_names([self._name(key) for key in keys if key_parts(key) is not None])

    def _delete_names(self, names: list[str]) -> None:
        for first in range(0, len(names), _DELETE_BATCH):
            batch = names[first : first + _DELETE_BATCH]
            try:
                answer = self._client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": name} for name in batch], "Quiet": True},
                )
            except _FAILURES as exc:
                raise _failed(f"could not delete {len(batch)} files", exc) from exc
            errors = answer.get("Errors") or []
            if errors:
                first_error = errors[0]
                raise StorageError(
                    f"could not delete {len(errors)} of {len(batch)} files, e.g. "
                    f"{first_error.get('Key')}: {first_error.get('Code')} "
                    f"{first_error.get('Message')}"
                )

    def delete_folder(self, folder: str) -> None:
        if key_parts(folder) is None:
            return
        within = self._name(folder) + "/"
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=within
            )
            names = [item["Key"] for page in pages for item in page.get("Contents", [])]
        except _FAILURES as exc:
            raise _failed(f"could not list {folder}", exc) from exc
        self._delete_names(names)

    def presigned_url(self, key: str, expires_in: int) -> str:
        try:
            return self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._name(key)},
                ExpiresIn=expires_in,
            )
        except _FAILURES as exc:
            raise _failed(f"could not sign a link to {key}", exc) from exc

    def check(self) -> str:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except _FAILURES as exc:
            return f"the bucket {self.bucket} cannot be used: {exc}"
        return ""

    def close(self) -> None:
        self._client.close()


def _missing(exc: Exception) -> bool:
    if not isinstance(exc, ClientError):
        return False
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


def _failed(what: str, exc: Exception) -> StorageError:
    return StorageError(f"{what}: {exc}")
