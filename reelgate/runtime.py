"""The running server's parts, built once from ``Settings`` and passed down."""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from reelgate.config import Settings
from reelgate.core.errors import InvalidUrl
from reelgate.storage import Storage, open_storage
from reelgate.storage.signing import LinkSigner
from reelgate.store import repo
from reelgate.store.db import Database
from reelgate.store.migrate import upgrade

FIRST_KEY_FILE = "api-key.txt"


@dataclass
class Runtime:
    settings: Settings
    db: Database
    storage: Storage
    signer: LinkSigner

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool = True) -> Runtime:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.resolved_database_url())
        if migrate:
            upgrade(db)
        storage = open_storage(settings)
        secret = settings.signing_secret
        if not secret:
            with db.write() as session:
                secret = repo.ensure_meta(session, "signing_secret", lambda: secrets.token_hex(32))
        return cls(settings, db, storage, LinkSigner(secret))

    def upload_url(self, base_url: str, key: str) -> str:
        """A link to an uploaded file, valid for ``upload_url_ttl_seconds``."""
        ttl = self.settings.upload_url_ttl_seconds
        if self.settings.s3.presigned_links:
            return self.storage.presigned_url(key, ttl)
        return self.signer.url(base_url, key, int(time.time()) + ttl)

    def result_url(self, base_url: str, key: str) -> str:
        """A link to a stored result, valid for ``result_url_ttl_seconds``.

        reelgate's own links expire on the hour after that, so repeated queries within an hour
        return the same link (S3 presigned links are new at every query).
        """
        ttl = self.settings.result_url_ttl_seconds
        if self.settings.s3.presigned_links:
            return self.storage.presigned_url(key, ttl)
        expires = math.ceil((time.time() + ttl) / 3600) * 3600
        return self.signer.url(base_url, key, expires)

    def own_file(self, url: str, dest: Path) -> Path | None:
        """The file behind one of this server's own links, or None for any other URL.

        The stored file itself when storage is a local directory; otherwise a copy written to
        ``dest``, which is then the caller's. ``InvalidUrl`` when the link has expired or its
        file is gone.
        """
        key = self.signer.own_key(url)
        if key is None:
            return None
        if self.storage.exists(key):
            local = self.storage.local_path(key)
            if local is not None:
                return local
            if self.storage.download(key, dest):
                return dest
        raise InvalidUrl("the linked file no longer exists")

    def close(self) -> None:
        self.storage.close()
        self.db.dispose()

    @property
    def first_key_path(self) -> Path:
        return self.settings.data_dir / FIRST_KEY_FILE
