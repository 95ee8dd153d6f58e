"""The upstream key pool: which key runs a task, within each key's concurrency, across workers.

The slots are the shared remote-key slots (``engines/remote.py``: a task holds a slot of one key
from the moment the engine chose the key until the task ends, counted from the tasks
themselves). What is the upstream's own: one SDK client per key, and a refresh that reads each
key's balance and concurrency from RunningHub. Keys that answer rate-limited or queue-full rest
for a while; a key whose balance ran out leaves the rotation until a refresh finds coins on it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

from sqlalchemy import update

from reelgate.client import Client, InvalidApiKey
from reelgate.client import ReelgateError as ClientError
from reelgate.config import UpstreamSettings
from reelgate.engines.remote import KeyState, RemoteSlots
from reelgate.store.db import Database
from reelgate.store.tables import UpstreamKey, utcnow

log = logging.getLogger("reelgate.upstream")

__all__ = ["KeyPool", "KeyState", "fingerprint", "label"]


def fingerprint(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def label(api_key: str) -> str:
    return api_key[:4] + "…"


class KeyPool(RemoteSlots):
    """The upstream keys, their clients, and their slots."""

    def __init__(
        self,
        keys: list[str],
        db: Database,
        settings: UpstreamSettings,
        client: Any,
    ) -> None:
        #: ``client(api_key)`` builds the SDK client for one key.
        self._keys = {fingerprint(k): k for k in keys}
        super().__init__(
            db,
            {key: label(api_key) for key, api_key in self._keys.items()},
            concurrency=settings.key_concurrency,
            rest_seconds=settings.rest_seconds,
        )
        self._settings = settings
        self._make_client = client
        self._clients: dict[str, Client] = {}
        self._lock = threading.Lock()
        self._refreshed_at = 0.0

    def client(self, key: str) -> Client:
        """The SDK client of one key, by fingerprint (one per key, reused)."""
        with self._lock:
            if key not in self._clients:
                self._clients[key] = self._make_client(self._keys[key])
            return self._clients[key]

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    # -- knowing the keys --------------------------------------------------------------------

    def refresh(self, *, force: bool = False) -> list[str]:
        """Read each key's concurrency (unless set) and balance from the upstream.

        A key the upstream refuses (invalid, disabled) or finds without coins leaves the
        rotation; one that recovered comes back. An unreachable upstream changes nothing.
        Returns why keys could not be read (empty when every key answered, or when it is not
        time to refresh yet).
        """
        now = time.monotonic()
        self.ensure_rows()
        if not force and now - self._refreshed_at < self._settings.refresh_seconds:
            return []
        self._refreshed_at = now
        return [problem for key in self._keys if (problem := self._refresh_key(key))]

    def _refresh_key(self, key: str) -> str:
        client = self.client(key)
        api_key = self._keys[key]
        values: dict[str, Any] = {"checked_at": utcnow()}
        try:
            account = client.account()
            if self._settings.key_concurrency <= 0:
                limit = client.queue_status().concurrent_limit
                values["concurrency"] = max(1, limit or 1)
        except ClientError as error:
            if isinstance(error, InvalidApiKey):
                values["out_of_rotation"] = f"refused by the upstream ({error.code})"
                log.warning("upstream key %s is out of rotation: %s", label(api_key), error)
            else:
                log.info("upstream key %s not refreshed: %s", label(api_key), error)
                return str(error)
        else:
            values["balance"] = account.remain_coins
            coins = account.coins
            if coins is not None and coins <= 0:
                values["out_of_rotation"] = "no balance left"
                log.warning(
                    "upstream key %s is out of rotation: no balance", label(self._keys[key])
                )
            else:
                values["out_of_rotation"] = ""
        with self._db.write() as session:
            session.execute(
                update(UpstreamKey).where(UpstreamKey.fingerprint == key).values(**values)
            )
        return ""
