"""The upstream key pool: which key runs a task, within each key's concurrency, across workers.

A task holds a slot of one key from the moment the engine chose the key until the task ends:
``tasks.remote_key`` names it, and the slots in use are counted from the tasks themselves (QUEUED
or RUNNING ones), so a crashed worker leaks nothing and every worker process sees the same count.
Choosing a key locks the pool's rows (PostgreSQL; SQLite's write lock does the same), so two
workers never both take a key's last slot. Keys that answer rate-limited or queue-full rest for
a while; a key whose balance ran out leaves the rotation until a refresh finds coins on it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from reelgate.client import Client, InvalidApiKey
from reelgate.client import ReelgateError as ClientError
from reelgate.config import UpstreamSettings
from reelgate.core.errors import Conflict, TaskCancelled
from reelgate.store import queue
from reelgate.store.db import Database
from reelgate.store.tables import UpstreamKey, utcnow

log = logging.getLogger("reelgate.upstream")


def fingerprint(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def label(api_key: str) -> str:
    return api_key[:4] + "…"


@dataclass(frozen=True)
class KeyState:
    """One key as ``reelgate engines`` shows it (never the key itself)."""

    fingerprint: str
    label: str
    concurrency: int
    in_use: int
    balance: str
    resting_until: datetime | None
    out_of_rotation: str

    @property
    def available(self) -> bool:
        resting = self.resting_until is not None and self.resting_until > utcnow()
        return not self.out_of_rotation and not resting

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.label,
            "fingerprint": self.fingerprint,
            "concurrency": self.concurrency,
            "inUse": self.in_use,
            "balance": self.balance,
            "restingUntil": self.resting_until.isoformat() if self.resting_until else None,
            "outOfRotation": self.out_of_rotation,
        }


class KeyPool:
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
        self._db = db
        self._settings = settings
        self._make_client = client
        self._clients: dict[str, Client] = {}
        self._lock = threading.Lock()
        self._refreshed_at = 0.0

    @property
    def fingerprints(self) -> list[str]:
        return list(self._keys)

    @property
    def keys(self) -> set[str]:
        """The fingerprints of this pool's keys."""
        return set(self._keys)

    def cancelled_tasks(self) -> list[tuple[int, dict[str, Any]]]:
        with self._db.read() as session:
            return queue.cancelled_remote_tasks(session)

    def forget(self, task_id: int) -> None:
        with self._db.write() as session:
            queue.forget_remote(session, task_id)

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
        self._ensure_rows()
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

    def _ensure_rows(self) -> None:
        with self._db.read() as session:
            known = set(session.execute(select(UpstreamKey.fingerprint)).scalars())
        for key, api_key in self._keys.items():
            if key in known:
                continue
            try:
                with self._db.write() as session:
                    session.add(
                        UpstreamKey(
                            fingerprint=key,
                            label=label(api_key),
                            concurrency=max(1, self._settings.key_concurrency),
                            out_of_rotation="",
                            balance="",
                        )
                    )
            except Conflict:
                pass  # another worker added it first
        if self._settings.key_concurrency > 0:
            with self._db.write() as session:
                session.execute(
                    update(UpstreamKey)
                    .where(UpstreamKey.fingerprint.in_(list(self._keys)))
                    .values(concurrency=self._settings.key_concurrency)
                )

    def states(self) -> list[KeyState]:
        with self._db.read() as session:
            rows = {
                row.fingerprint: row
                for row in session.execute(
                    select(UpstreamKey).where(UpstreamKey.fingerprint.in_(list(self._keys)))
                ).scalars()
            }
            in_use = queue.remote_slots_in_use(session)
        return [
            KeyState(
                key,
                rows[key].label,
                rows[key].concurrency,
                in_use.get(key, 0),
                rows[key].balance,
                rows[key].resting_until,
                rows[key].out_of_rotation,
            )
            for key in self._keys
            if key in rows
        ]

    # -- slots -------------------------------------------------------------------------------

    def acquire(
        self, task_id: int, worker_id: str, checkpoint: dict[str, Any], *, exclude: set[str]
    ) -> str | None:
        """Take a slot of the least busy available key for the task, with ``checkpoint``.

        Returns the key's fingerprint, or None when every key is busy, resting or out of
        rotation. The slot and the checkpoint are written in one transaction.
        """
        with self._db.write() as session:
            rows = list(
                session.execute(
                    select(UpstreamKey)
                    .where(UpstreamKey.fingerprint.in_(list(self._keys)))
                    .order_by(UpstreamKey.fingerprint)
                    .with_for_update()
                ).scalars()
            )
            in_use = queue.remote_slots_in_use(session)
            now = utcnow()
            free = [
                (in_use.get(row.fingerprint, 0) / row.concurrency, row.fingerprint)
                for row in rows
                if row.fingerprint not in exclude
                and not row.out_of_rotation
                and (row.resting_until is None or row.resting_until <= now)
                and in_use.get(row.fingerprint, 0) < row.concurrency
            ]
            if not free:
                return None
            chosen = min(free)[1]
            saved = queue.save_checkpoint(
                session,
                task_id,
                worker_id=worker_id,
                checkpoint={**checkpoint, "key": chosen},
                remote_key=chosen,
            )
            if not saved:
                raise TaskCancelled()
            return chosen

    def rest(self, key: str, why: str) -> None:
        """Leave ``key`` alone for ``rest_seconds`` (it said it is rate-limited or full)."""
        until = utcnow() + timedelta(seconds=self._settings.rest_seconds)
        log.info("upstream key %s rests until %s: %s", label(self._keys[key]), until, why)
        with self._db.write() as session:
            session.execute(
                update(UpstreamKey)
                .where(UpstreamKey.fingerprint == key)
                .values(resting_until=until)
            )

    def retire(self, key: str, why: str) -> None:
        """Take ``key`` out of rotation (until a refresh finds it usable again)."""
        log.warning("upstream key %s is out of rotation: %s", label(self._keys[key]), why)
        with self._db.write() as session:
            session.execute(
                update(UpstreamKey)
                .where(UpstreamKey.fingerprint == key)
                .values(out_of_rotation=why[:200])
            )
