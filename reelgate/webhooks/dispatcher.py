"""The webhook dispatcher: delivers the outbox's ``TASK_END`` events, with retries.

Every worker process runs one (a thread beside its render loop). It claims due deliveries with a
lease, so any number of dispatchers share one outbox without sending an event twice at once; a
dispatcher that dies mid-send leaves its rows to the next one when the lease runs out. Each
attempt POSTs the same body with the same ``webhook-id`` (receivers de-duplicate by it) and a
fresh Standard Webhooks signature. A 2xx within ``timeout_seconds`` is delivered; anything else is
retried after an exponentially growing, jittered delay until ``retry_for_seconds`` after the
first attempt, then the event is FAILED (``retryWebhook`` starts a new round).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import httpx

from reelgate import __version__
from reelgate.core.errors import InvalidUrl
from reelgate.core.faults import Faults
from reelgate.logs import task_context
from reelgate.runtime import Runtime
from reelgate.store import outbox
from reelgate.store.outbox import DueDelivery
from reelgate.store.tables import utcnow
from reelgate.webhooks.events import event_body, event_data
from reelgate.webhooks.secret import public_secret
from reelgate.webhooks.urls import parse_webhook_url, policy_of, resolve_webhook_host
from reelgate.wire.webhooks import headers_for

log = logging.getLogger("reelgate.webhooks")

NO_FAULTS = Faults()
#: How much of a receiver's answer is read (for getWebhookDetail); the rest is not wanted.
ANSWER_BYTES = 512


class WebhookDispatcher:
    def __init__(self, runtime: Runtime, *, client: httpx.Client | None = None) -> None:
        self.runtime = runtime
        self.settings = runtime.settings.webhooks
        self._policy = policy_of(runtime.settings)
        self._owns_client = client is None
        # trust_env=False: a proxy from the environment would get the pinned IP-literal URL and
        # connect on its own, unchecked. Redirects are not followed: a receiver answers.
        self._client = client or httpx.Client(trust_env=False, follow_redirects=False)
        self._pool = ThreadPoolExecutor(max(1, self.settings.concurrency), "webhook")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self._owns_client:
            self._client.close()

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set."""
        while not stop.is_set():
            try:
                busy = self.deliver_due()
            except Exception:  # the outbox stays; the next round tries again
                log.exception("webhook dispatch round failed")
                busy = 0
            if not busy:
                stop.wait(self.settings.poll_seconds * random.uniform(0.75, 1.25))

    def deliver_due(self) -> int:
        """Attempt every due delivery (up to ``concurrency`` at once); returns how many."""
        with self.runtime.db.write() as session:
            due = outbox.claim_due(
                session,
                lock_seconds=self.settings.timeout_seconds + 30,
                retry_for_seconds=self.settings.retry_for_seconds,
                limit=max(1, self.settings.concurrency),
            )
        for _ in self._pool.map(self._attempt, due):
            pass
        return len(due)

    # -- one attempt -----------------------------------------------------------------------

    def _attempt(self, due: DueDelivery) -> None:
        # In a thread of the pool: the task's id is set here, for every line of the attempt.
        with task_context(due.task_id):
            try:
                self._attempt_or_raise(due)
            except Exception:
                # Never leave a claimed delivery without a decision: retry it later.
                log.exception("webhook %s: attempt failed", due.id)
                with self.runtime.db.write() as session:
                    outbox.postpone(session, due.id, utcnow() + timedelta(seconds=30))

    def _attempt_or_raise(self, due: DueDelivery) -> None:
        faults = Faults.from_stored(due.faults) or NO_FAULTS
        ready_at = due.created_at + timedelta(seconds=faults.webhook_delay_seconds)
        if due.attempts == 0 and utcnow() < ready_at:
            # Fault injection: a slow webhook. Nothing is sent before its time.
            with self.runtime.db.write() as session:
                outbox.postpone(session, due.id, ready_at)
            return
        data = due.event_data
        if data is None:
            data = event_data(self.runtime, due.task_id)
        body = event_body(due.task_id, data)
        if faults.fails_webhook(due.task_id, due.attempts + 1):
            delivered, response = False, "not sent: fault injection (webhook_fail_rate)"
        else:
            delivered, response = self._post(due, body)
        retry_at = None if delivered else self._retry_at(due.attempts + 1)
        with self.runtime.db.write() as session:
            status = outbox.settle(
                session,
                due.id,
                delivered=delivered,
                response=response,
                event_data=data,
                retry_at=retry_at,
            )
        log.info("webhook %s of task %s: %s (%s)", due.id, due.task_id, status, response)

    def _retry_at(self, attempts: int) -> datetime:
        """Exponential backoff with jitter: about ``first × 2^(n-1)``, capped."""
        delay = min(
            self.settings.max_retry_interval_seconds,
            self.settings.first_retry_seconds * 2 ** min(attempts - 1, 30),
        )
        # Half fixed, half random: receivers coming back up are not hit by every event at once.
        return utcnow() + timedelta(seconds=delay * random.uniform(0.5, 1.0))

    def _post(self, due: DueDelivery, body: bytes) -> tuple[bool, str]:
        """Send once; (delivered, what happened in words)."""
        try:
            url = parse_webhook_url(due.url)
            resolved = resolve_webhook_host(url, self._policy)
        except InvalidUrl as exc:
            return False, f"not sent: {exc.detail}"
        host = url.raw_host.decode("ascii")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"reelgate/{__version__}",
            # The pool keys connections by the pinned IP; one connection per delivery keeps
            # receivers that share an address apart.
            "Connection": "close",
            "Host": url.netloc.decode("ascii"),
            **headers_for(public_secret(due.webhook_secret), str(due.id), body),
        }
        deadline = time.monotonic() + self.settings.timeout_seconds
        failure = "no address"
        # Every address was approved by the policy; the request goes to the IP itself, so that
        # httpx does not resolve the name again (DNS rebinding).
        for ip in resolved.addresses:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            request = httpx.Request(
                "POST",
                url.copy_with(host=str(ip)),
                headers=headers,
                content=body,
                extensions={"sni_hostname": host, "timeout": httpx.Timeout(remaining).as_dict()},
            )
            try:
                response = self._client.send(request, stream=True)
                try:
                    answer = _read_some(response, deadline)
                finally:
                    response.close()
                text = f"HTTP {response.status_code}: {answer}" if answer else ""
                return response.is_success, text or f"HTTP {response.status_code}"
            except httpx.ConnectError as exc:
                failure = f"could not connect ({exc})"
            except httpx.TimeoutException:
                return False, f"no answer within {self.settings.timeout_seconds:g} s"
            except httpx.HTTPError as exc:
                return False, f"request failed ({exc})"
        return False, failure


def _read_some(response: httpx.Response, deadline: float) -> str:
    """The start of the answer's body, read until ``ANSWER_BYTES`` or the deadline."""
    got = b""
    for chunk in response.iter_raw():
        got += chunk
        if len(got) >= ANSWER_BYTES or time.monotonic() > deadline:
            break
    return got[:ANSWER_BYTES].decode("utf-8", "replace").strip()
