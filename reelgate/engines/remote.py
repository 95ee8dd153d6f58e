"""What the engines that run tasks elsewhere share (``upstream``, ``openai-videos``).

* ``RemoteSlots``: the slots of remote keys (an upstream API key, a ``/v1/videos`` server), how
  many tasks each runs at once across every worker. A task holds a slot from the moment its
  engine chose the key until it ends: ``tasks.remote_key`` names it, and the slots in use are
  counted from the tasks themselves (QUEUED or RUNNING ones), so a crashed worker leaks nothing.
  Choosing a key locks its row (``upstream_keys``; PostgreSQL row locks, SQLite's write lock),
  so two workers never both take a key's last slot. The same column tells each engine which
  cancelled tasks are its own to pass on (``cancelled_tasks``).
* ``Patience``: waiting on a remote that is busy or down, in short naps that end as soon as the
  task must stop, never past a deadline.
* ``mark_sent``: the rule for a request that costs money. It is marked sent in the task's
  checkpoint before it leaves; a task resumed with the mark on may send it again only to a
  remote that honours ``Idempotency-Key`` (it answers with the job it already has), and
  otherwise fails rather than risk paying twice.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from reelgate.core.errors import Conflict, EngineUnavailable, TaskCancelled, UpstreamError
from reelgate.engines.base import RemoteContext
from reelgate.store import queue
from reelgate.store.db import Database
from reelgate.store.tables import UpstreamKey, utcnow

log = logging.getLogger("reelgate.remote")


@dataclass(frozen=True)
class KeyState:
    """One remote key as ``reelgate engines`` shows it (never the key itself)."""

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


class RemoteSlots:
    """The slots of some remote keys, by fingerprint (``labels``: fingerprint → what logs and
    listings show). ``concurrency`` > 0 sets every key's slots; 0 leaves the stored value (an
    engine that reads it from the remote writes it)."""

    def __init__(
        self, db: Database, labels: dict[str, str], *, concurrency: int, rest_seconds: float
    ) -> None:
        self._db = db
        self._labels = dict(labels)
        self._concurrency = concurrency
        self._rest_seconds = rest_seconds

    @property
    def fingerprints(self) -> list[str]:
        return list(self._labels)

    @property
    def keys(self) -> set[str]:
        """The fingerprints of these keys."""
        return set(self._labels)

    def ensure_rows(self) -> None:
        """Create the rows of keys seen for the first time (and set their slots when fixed)."""
        with self._db.read() as session:
            known = set(session.execute(select(UpstreamKey.fingerprint)).scalars())
        for key, label in self._labels.items():
            if key in known:
                continue
            try:
                with self._db.write() as session:
                    session.add(
                        UpstreamKey(
                            fingerprint=key,
                            label=label[:32],
                            concurrency=max(1, self._concurrency),
                            out_of_rotation="",
                            balance="",
                        )
                    )
            except Conflict:
                pass  # another worker added it first
        if self._concurrency > 0:
            with self._db.write() as session:
                session.execute(
                    update(UpstreamKey)
                    .where(UpstreamKey.fingerprint.in_(self.fingerprints))
                    .values(concurrency=self._concurrency)
                )

    def states(self) -> list[KeyState]:
        with self._db.read() as session:
            rows = {
                row.fingerprint: row
                for row in session.execute(
                    select(UpstreamKey).where(UpstreamKey.fingerprint.in_(self.fingerprints))
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
            for key in self._labels
            if key in rows
        ]

    def acquire(
        self, task_id: int, worker_id: str, checkpoint: dict[str, Any], *, exclude: set[str]
    ) -> str | None:
        """Take a slot of the least busy available key for the task, with ``checkpoint``.

        Returns the key's fingerprint, or None when every key is busy, resting or out of
        rotation. The slot and the checkpoint (with ``key`` set) are written in one
        transaction; ``TaskCancelled`` when the task is no longer the worker's.
        """
        with self._db.write() as session:
            rows = list(
                session.execute(
                    select(UpstreamKey)
                    .where(UpstreamKey.fingerprint.in_(self.fingerprints))
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
        """Leave ``key`` alone for a while (it said it is rate-limited or full)."""
        until = utcnow() + timedelta(seconds=self._rest_seconds)
        log.info("remote key %s rests until %s: %s", self._labels[key], until, why)
        with self._db.write() as session:
            session.execute(
                update(UpstreamKey)
                .where(UpstreamKey.fingerprint == key)
                .values(resting_until=until)
            )

    def retire(self, key: str, why: str) -> None:
        """Take ``key`` out of rotation (until its engine finds it usable again)."""
        log.warning("remote key %s is out of rotation: %s", self._labels[key], why)
        with self._db.write() as session:
            session.execute(
                update(UpstreamKey)
                .where(UpstreamKey.fingerprint == key)
                .values(out_of_rotation=why[:200])
            )

    def cancelled_tasks(self) -> list[tuple[int, dict[str, Any]]]:
        """(id, checkpoint) of cancelled tasks that still hold a slot of one of these keys:
        their remote job may still run, and this engine must cancel it there."""
        with self._db.read() as session:
            return queue.cancelled_remote_tasks(session, keys=self.fingerprints)

    def forget(self, task_id: int) -> None:
        """The task's remote job needs nothing more from us: free its slot for good."""
        with self._db.write() as session:
            queue.forget_remote(session, task_id)


class Patience:
    """Waiting on a remote (``what`` names it in messages), never past ``max_wait_seconds``."""

    def __init__(
        self,
        max_wait_seconds: float,
        *,
        what: str = "the remote",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_wait_seconds = max_wait_seconds
        self.what = what
        self._sleep = sleep

    def deadline(self) -> float:
        return time.monotonic() + self.max_wait_seconds

    def nap(self, ctx: RemoteContext, seconds: float) -> None:
        """Sleep in short steps, waking up as soon as the task must stop."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if ctx.should_stop():
                return
            self._sleep(min(left, 0.2))

    def outage(self, ctx: RemoteContext, deadline: float, why: str) -> None:
        """A pause before trying again; ``EngineUnavailable`` (1010) once past ``deadline``."""
        if time.monotonic() > deadline:
            raise EngineUnavailable(f"{self.what} did not recover in time: {why}")
        log.info("%s is in trouble (%s); trying again", self.what, why)
        self.nap(ctx, random.uniform(1.0, 3.0))

    @staticmethod
    def stop_if_asked(ctx: RemoteContext) -> None:
        """``TaskCancelled`` once the task must stop (cancelled, swept, shutting down)."""
        if ctx.should_stop():
            raise TaskCancelled()


def mark_sent(
    ctx: RemoteContext, state: dict[str, Any], *, idempotent: bool, what: str
) -> dict[str, Any]:
    """Record, before a paid request leaves, that it is being sent; the state with the mark.

    A state that already carries the mark comes from an attempt whose answer was lost: sent
    again only to a remote that honours ``Idempotency-Key``; otherwise ``UpstreamError``
    (1015), since ``what`` may already have the job and would be paid twice.
    """
    if state.get("sent") and not idempotent:
        raise UpstreamError(
            "1015",
            f"{what} may already have this task (a request was sent and its answer was lost), "
            "and it cannot be asked by key; reelgate does not send it again, so it is never "
            "paid twice",
        )
    sent = {**state, "sent": True}
    ctx.save_checkpoint(sent)
    return sent
