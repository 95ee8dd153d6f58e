"""The API process killed with SIGKILL in the middle of a submit burst (PostgreSQL), then started
again: every task a client was told of exists, no coin is held for a task that does not, and an
``Idempotency-Key`` repeated after the restart answers one task, always the same."""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.acceptance.faultkit import (
    FAST,
    I2V,
    assert_accounts,
    assert_lifecycles,
    body,
    key_coins,
    read_books,
)
from tests.acceptance.test_processes import Cluster

SUBMITTERS = 6
#: Answers received before the kill, and after the restart, before the burst ends.
BEFORE, AFTER = 40, 20


@dataclass(frozen=True)
class Outcome:
    """One submit as its client saw it."""

    body: dict[str, Any]
    idempotency_key: str | None
    #: The task id answered; None when no answer came.
    task_id: str | None
    #: ``connect`` (refused: it never reached a server), ``lost`` (sent, answer never came) or
    #: ``answered``.
    fate: str


class Burst:
    """Threads submitting as fast as they are answered, every other submit with a fresh
    ``Idempotency-Key``, until stopped; each outcome recorded."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.outcomes: list[Outcome] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._submit, args=(n,), daemon=True) for n in range(SUBMITTERS)
        ]

    def __enter__(self) -> Burst:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def answered(self) -> int:
        with self._lock:
            return sum(o.fate == "answered" for o in self.outcomes)

    def wait_answered(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.answered() < count:
            assert time.monotonic() < deadline, (self.answered(), self.errors[-3:])
            time.sleep(0.02)

    def _submit(self, n: int) -> None:
        key = self.cluster.http.headers["Authorization"]
        with httpx.Client(headers={"Authorization": key}, timeout=20) as client:
            i = 0
            while not self._stop.is_set():
                i += 1
                shot = body(f"burst {n}.{i}")
                idempotency_key = f"burst-{n}-{i}" if i % 2 else None
                headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
                try:
                    answer = client.post(self.cluster.url + I2V, json=shot, headers=headers)
                except httpx.ConnectError:
                    self._record(Outcome(shot, idempotency_key, None, "connect"))
                    time.sleep(0.1)  # the server is down; do not spin
                    continue
                except httpx.TransportError:
                    self._record(Outcome(shot, idempotency_key, None, "lost"))
                    continue
                task = answer.json()
                if answer.status_code != 200 or task.get("errorCode") != "":
                    self.errors.append(f"{answer.status_code} {task}")
                    continue
                self._record(Outcome(shot, idempotency_key, str(task["taskId"]), "answered"))

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)


def test_an_api_killed_mid_burst_keeps_every_answered_task_and_no_coin_of_others(
    tmp_path: Path, postgres_url: str
) -> None:
    cluster = Cluster(tmp_path / "data", postgres_url)
    cluster.env.update(FAST)
    cluster.start_server()
    try:
        start_coins = key_coins(postgres_url)
        with Burst(cluster) as burst:
            burst.wait_answered(BEFORE)
            api = cluster.procs[0]
            api.send_signal(signal.SIGKILL)
            api.wait(10)
            killed_at = len(burst.outcomes)
            cluster.start_server()
            burst.wait_answered(BEFORE + AFTER)
        outcomes = burst.outcomes
        assert not burst.errors, burst.errors[:5]
        lost = [o for o in outcomes if o.fate == "lost"]
        assert lost, "the kill caught no submit in flight"
        assert any(o.fate == "answered" for o in outcomes[killed_at:])

        books = read_books(postgres_url)
        answered = [o for o in outcomes if o.task_id is not None]
        told = {int(o.task_id) for o in answered if o.task_id is not None}
        assert len(told) == len(answered), "two submits were answered the same task"
        assert told <= set(books.tasks), "a task a client was told of does not exist"
        # The only tasks no client heard of are those whose answer the kill swallowed.
        assert len(set(books.tasks) - told) <= len(lost)
        assert_lifecycles(books)
        assert_accounts(books, start_coins)  # nothing held for a task that does not exist

        # The same Idempotency-Key again: the task that exists, or one new task, and that one
        # from then on.
        # Every submit whose answer was lost, and a few of the others: some that never reached
        # the server (there is no task: a new one) and some that were answered.
        by_key = {t.idempotency_key: t.id for t in books.tasks.values() if t.idempotency_key}
        retried = [o for o in lost if o.idempotency_key]
        retried += [o for o in outcomes if o.idempotency_key and o.fate == "connect"][:3]
        retried += [o for o in answered if o.idempotency_key][:3]
        for outcome in retried:
            assert outcome.idempotency_key is not None
            headers = {"Idempotency-Key": outcome.idempotency_key}
            first = cluster.http.post(I2V, json=outcome.body, headers=headers).json()
            again = cluster.http.post(I2V, json=outcome.body, headers=headers).json()
            assert first["errorCode"] == "" and again["taskId"] == first["taskId"], (first, again)
            if outcome.task_id is not None:
                assert first["taskId"] == outcome.task_id
            if outcome.idempotency_key in by_key:
                assert int(first["taskId"]) == by_key[outcome.idempotency_key]
    finally:
        cluster.stop()

    books = read_books(postgres_url)
    keys = [t.idempotency_key for t in books.tasks.values() if t.idempotency_key]
    assert len(keys) == len(set(keys)), "an Idempotency-Key holds two tasks"
    assert {o.idempotency_key for o in retried} <= set(keys)
    assert_lifecycles(books)
    assert_accounts(books, start_coins)
