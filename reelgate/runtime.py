"""The running server's parts, built once from ``Settings`` and passed down."""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from reelgate.config import Settings
from reelgate.storage.local import LocalStorage
from reelgate.storage.signing import LinkSigner
from reelgate.store import repo
from reelgate.store.db import Database
from reelgate.store.migrate import upgrade

FIRST_KEY_FILE = "api-key.txt"


@dataclass
class Runtime:
    settings: Settings
    db: Database
    storage: LocalStorage
    signer: LinkSigner

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool = True) -> Runtime:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.resolved_database_url())
        if migrate:
            upgrade(db)
        storage = LocalStorage(settings.resolved_storage_dir())
        secret = settings.signing_secret
        if not secret:
            with db.write() as session:
                secret = repo.ensure_meta(session, "signing_secret", lambda: secrets.token_hex(32))
        return cls(settings, db, storage, LinkSigner(secret, storage))

    def result_url(self, base_url: str, key: str) -> str:
        """A signed link to a stored result, valid for ``result_url_ttl_seconds``.

        The expiry is rounded up to the hour, so repeated queries within an hour return the same
        link.
        """
        ttl = self.settings.result_url_ttl_seconds
        expires = math.ceil((time.time() + ttl) / 3600) * 3600
        return self.signer.url(base_url, key, expires)

    def close(self) -> None:
        self.db.dispose()

    @property
    def first_key_path(self) -> Path:
        return self.settings.data_dir / FIRST_KEY_FILE
