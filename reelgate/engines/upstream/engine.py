"""The ``upstream`` engine: a durable gateway in front of RunningHub or another reelgate.

A task moves through stages, each recorded in its checkpoint before the step that follows it:

    waiting     no key chosen, nothing spent
    uploading   a key's slot is held; local inputs are being uploaded (free, safe to redo)
    submitting  the body is final; the paid submit is being sent
    submitted   the upstream task id is known: only polling is left

A task resumed after a crash, a lease expiry or a restart reads its checkpoint and goes on from
its stage. Only ``submitting`` is ambiguous (the submit may or may not have reached the
upstream): when the upstream honours ``Idempotency-Key`` (another reelgate) the submit is sent
again with the same key and the upstream answers with the task it already has; otherwise
(RunningHub) the task fails with a clear message rather than risk paying twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reelgate.client import (
    APIError,
    Client,
    InsufficientBalance,
    InvalidApiKey,
    NetworkError,
    QueueFull,
    RateLimited,
    RetryableError,
    RetryPolicy,
    TaskInfo,
    TaskStatus,
)
from reelgate.client import ReelgateError as ClientError
from reelgate.config import Settings
from reelgate.core.catalogue import Family
from reelgate.core.errors import EngineUnavailable, TaskCancelled, UpstreamError
from reelgate.engines.base import (
    Capabilities,
    RemoteContext,
    RemoteJob,
    RenderOutput,
    RenderResult,
)
from reelgate.engines.remote import Patience, mark_sent
from reelgate.engines.upstream.pool import KeyPool
from reelgate.logs import task_context
from reelgate.store.db import Database
from reelgate.wire import WIRE_REQUESTS

log = logging.getLogger("reelgate.upstream")

#: Retries of one call made by the SDK itself; the engine's own loop handles longer outages.
CALL_RETRY = RetryPolicy(max_attempts=3, budget=15.0, backoff=0.5, max_backoff=4.0)


class UpstreamEngine:
    name = "upstream"
    remote = True
    capabilities = Capabilities(families=frozenset(Family), reference_images=4, max_seconds=15)

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        client: Callable[[str], Client] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not settings.upstream_url:
            raise EngineUnavailable("the upstream engine needs REELGATE_UPSTREAM_URL")
        keys = settings.upstream_key_pool()
        if not keys:
            raise EngineUnavailable("the upstream engine needs REELGATE_UPSTREAM_KEYS")
        self.url = settings.upstream_url.rstrip("/")
        self.settings = settings.upstream
        self.patience = Patience(self.settings.max_wait_seconds, what="the upstream", sleep=sleep)

        def make_client(api_key: str) -> Client:
            return Client(
                self.url,
                api_key,
                timeout=self.settings.timeout_seconds,
                retry=CALL_RETRY,
                idempotency=self.settings.idempotent,
            )

        self.pool = KeyPool(keys, db, self.settings, client or make_client)

    @property
    def idempotent(self) -> bool:
        """Whether a submit may be repeated with its ``Idempotency-Key``."""
        return self.pool.client(self.pool.fingerprints[0]).idempotency

    def ready(self) -> tuple[bool, str]:
        try:
            problems = self.pool.refresh(force=True)
        except Exception as exc:  # the database itself: say so rather than crash the listing
            return False, f"the key pool cannot be read: {exc}"
        if len(problems) == len(self.pool.fingerprints):
            return False, f"{self.url} does not answer: {problems[0]}"
        states = self.pool.states()
        usable = [s for s in states if not s.out_of_rotation]
        if not usable:
            return False, f"no usable key at {self.url}"
        return True, f"{len(usable)} of {len(states)} keys usable at {self.url}"

    def close(self) -> None:
        self.pool.close()

    # -- one task --------------------------------------------------------------------------

    def run(self, job: RemoteJob, ctx: RemoteContext) -> RenderResult:
        state: dict[str, Any] = dict(ctx.checkpoint or {})
        deadline = self.patience.deadline()
        tried: set[str] = set()
        while state.get("stage") != "submitted":
            stage = state.get("stage", "waiting")
            if stage == "waiting":
                state = self._take_key(job, ctx, deadline, tried)
            elif stage == "uploading":
                state = self._upload(job, ctx, state)
            elif stage == "submitting":
                state = self._submit(job, ctx, state, tried, deadline)
            else:
                raise EngineUnavailable(f"unknown checkpoint stage {stage!r}")
        return self._follow(job, ctx, state, deadline)

    def _take_key(
        self, job: RemoteJob, ctx: RemoteContext, deadline: float, tried: set[str]
    ) -> dict[str, Any]:
        """Wait for a free slot of some key, and hold it (stage ``uploading``)."""
        self.pool.refresh()
        delay = 0.2
        while True:
            self.patience.stop_if_asked(ctx)
            checkpoint = {"stage": "uploading", "idempotencyKey": f"reelgate-{job.task_id}"}
            key = self.pool.acquire(job.task_id, ctx.worker_id, checkpoint, exclude=tried)
            if key is not None:
                return {**checkpoint, "key": key}
            if tried and not self._any_other_key(tried):
                tried.clear()  # every key was tried once: any of them may have recovered
            if time.monotonic() > deadline:
                raise EngineUnavailable(
                    f"no upstream key was free for {self.settings.max_wait_seconds:.0f} s"
                )
            self.patience.nap(ctx, delay)
            delay = min(delay * 1.5, 2.0)

    def _any_other_key(self, tried: set[str]) -> bool:
        return any(s.available and s.fingerprint not in tried for s in self.pool.states())

    def _upload(self, job: RemoteJob, ctx: RemoteContext, state: dict[str, Any]) -> dict[str, Any]:
        """Replace local inputs (own links, ``data:`` URIs) by upstream upload links."""
        client = self.pool.client(state["key"])
        body = dict(job.params)
        request_type = WIRE_REQUESTS.get(job.model)
        for field in request_type.media_fields if request_type else ():
            value = body.get(field)
            if isinstance(value, list):
                body[field] = [
                    self._uploaded(client, ctx, item, f"{field}[{n}]")
                    for n, item in enumerate(value)
                ]
            elif isinstance(value, str):
                body[field] = self._uploaded(client, ctx, value, field)
        state = {**state, "stage": "submitting", "body": body}
        ctx.save_checkpoint(state)
        return state

    def _uploaded(self, client: Client, ctx: RemoteContext, url: str, field: str) -> str:
        local = ctx.local_file(url, field)
        if local is None:
            return url
        link: str = self._call(ctx, lambda: client.upload(local).download_url)
        return link

    def _submit(
        self,
        job: RemoteJob,
        ctx: RemoteContext,
        state: dict[str, Any],
        tried: set[str],
        deadline: float,
    ) -> dict[str, Any]:
        """Send the paid submit once; on an answer, record the upstream task id."""
        key = state["key"]
        client = self.pool.client(key)
        # Marked as sent before it leaves: a crash from here on leaves an unknown outcome.
        mark_sent(ctx, state, idempotent=self.idempotent, what="the upstream")
        try:
            # Verbatim: reelgate checked a catalogue body at submit; any other body is the
            # upstream's to judge (it priced it then).
            task = client.run(
                job.model, state["body"], idempotency_key=state["idempotencyKey"], verbatim=True
            )
        except (RateLimited, QueueFull) as busy:
            self.pool.rest(key, f"{busy.code} {busy.error_message}")
            return self._release(ctx, tried, key)
        except (InsufficientBalance, InvalidApiKey) as refused:
            self.pool.retire(key, f"{refused.code} {refused.error_message}")
            return self._release(ctx, tried, key)
        except (NetworkError, RetryableError) as lost:
            if lost.submit_safe:
                # Refused outright or never sent (unreachable, 1010/1011): no task exists.
                self.patience.outage(ctx, deadline, f"the upstream did not take the submit: {lost}")
                return {**state, "sent": False}
            if not self.idempotent:
                raise UpstreamError(
                    "1015",
                    f"the upstream's answer to the submit was lost ({lost}); it may have "
                    "started the task, and it cannot be asked by key, so reelgate does not "
                    "submit it again (it would be paid twice)",
                ) from None
            self.patience.outage(ctx, deadline, f"the submit's answer was lost: {lost}")
            return {**state, "sent": True}  # resent with the same Idempotency-Key
        except APIError as error:
            raise UpstreamError(error.code, error.error_message) from None
        state = {**state, "stage": "submitted", "remoteTaskId": task.id, "body": None}
        ctx.save_checkpoint(state)
        log.info("task %s runs upstream as %s", job.task_id, task.id)
        return state

    def _release(self, ctx: RemoteContext, tried: set[str], key: str) -> dict[str, Any]:
        """Give the key's slot back and choose again (nothing was submitted with it)."""
        tried.add(key)
        state: dict[str, Any] = {"stage": "waiting"}
        ctx.save_checkpoint(state, None)
        return state

    def _follow(
        self, job: RemoteJob, ctx: RemoteContext, state: dict[str, Any], deadline: float
    ) -> RenderResult:
        """Poll the upstream task to its end, then copy its outputs into the scratch dir."""
        client = self.pool.client(state["key"])
        remote_id = str(state["remoteTaskId"])
        delay = 1.0
        while True:
            if ctx.owner_cancelled():
                self._cancel_upstream(job.task_id, client, remote_id)
                raise TaskCancelled()
            self.patience.stop_if_asked(ctx)
            try:
                info = client.query(remote_id)
            except (NetworkError, RetryableError) as error:
                self.patience.outage(ctx, deadline, f"polling {remote_id}: {error}")
                continue
            except APIError as error:
                raise UpstreamError(error.code, error.error_message) from None
            if info.progress is not None:
                ctx.report_progress(0.95 * info.progress)
            if info.done:
                return self._finished(client, ctx, info)
            wait = info.poll_after if info.poll_after is not None else delay
            delay = min(delay * 1.5, self.settings.max_poll_seconds)
            self.patience.nap(ctx, min(wait, self.settings.max_poll_seconds))

    def _finished(self, client: Client, ctx: RemoteContext, info: TaskInfo) -> RenderResult:
        if info.status is TaskStatus.FAILED:
            raise UpstreamError(info.error_code or "1015", info.error_message)
        if info.status is TaskStatus.CANCEL:
            raise UpstreamError("1015", "the task was cancelled on the upstream")
        files = self._call(ctx, lambda: client.download(info, ctx.scratch_dir))
        outputs = tuple(
            RenderOutput(path, _extension(path, output.output_type))
            for path, output in zip(files, info.outputs, strict=True)
        )
        coins = info.usage.coins if info.usage is not None else None
        return RenderResult(outputs, charge=None if coins is None else int(coins))

    def _cancel_upstream(self, task_id: int, client: Client, remote_id: str) -> None:
        try:
            client.cancel(remote_id)
        except ClientError as error:
            log.warning("upstream task %s could not be cancelled: %s", remote_id, error)
            return
        log.info("task %s cancelled: cancelled upstream task %s", task_id, remote_id)
        self.pool.forget(task_id)

    def sweep(self) -> int:
        """Cancel upstream the tasks that were cancelled here while no worker ran them.

        A task cancelled while QUEUED after a crash (its checkpoint holds an upstream task) has
        no worker to pass the cancel on; any worker with this engine does it here.
        """
        done = 0
        for task_id, checkpoint in self.pool.cancelled_tasks():
            remote_id = checkpoint.get("remoteTaskId")
            key = checkpoint.get("key")
            with task_context(task_id):
                if checkpoint.get("stage") == "submitted" and remote_id and key in self.pool.keys:
                    self._cancel_upstream(task_id, self.pool.client(key), str(remote_id))
                else:  # nothing was submitted with the slot (or not with one of our keys)
                    self.pool.forget(task_id)
            done += 1
        return done

    # -- waiting -----------------------------------------------------------------------------

    def _call(self, ctx: RemoteContext, call: Callable[[], Any]) -> Any:
        """A free call (upload, download): retried through outages, never past the deadline."""
        deadline = self.patience.deadline()
        while True:
            try:
                return call()
            except (NetworkError, RetryableError) as error:
                self.patience.outage(ctx, deadline, str(error))
            except APIError as error:
                raise UpstreamError(error.code, error.error_message) from None


def _extension(path: Path, output_type: str) -> str:
    return (output_type or path.suffix.lstrip(".") or "bin").lower()
