"""The ``openai-videos`` engine: a task runs as a job of an OpenAI-style ``/v1/videos`` server.

SGLang-Diffusion, vLLM-Omni and FastVideo serve open models (Wan2.2, LTX-2, …) behind that
format, with their jobs in memory, one generation at a time. In front of them reelgate keeps
the durable part: the queue, keys, coins, retries, and a checkpoint per task, each stage
recorded before the step that follows it (the shared remote mechanism, ``engines/remote.py``):

    waiting     no slot held, nothing sent
    preparing   a slot of the server is held (``concurrency`` jobs at once); the inputs are
                fetched and checked as a local engine's would be (free, safe to redo)
    (sent)      the create is being sent: marked in the checkpoint before it leaves
    submitted   the server's job id is known: recorded before anything else, then polled,
                its video downloaded into reelgate's storage

A task resumed after a crash reads its checkpoint and goes on from its stage: a submitted one
polls the same job, so the server runs it once. A create whose answer was lost is sent again
only to a server that honours ``Idempotency-Key`` (another reelgate); otherwise the task fails
rather than run twice. A job the server forgot (it restarted: its jobs were in memory) is
created again, a few times at most. Cancelling the task cancels the job (``DELETE``), also
when no worker holds the task then (``sweep``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mimetypes
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reelgate.config import OpenAIVideosSettings, Settings
from reelgate.core.catalogue import Family, get_model
from reelgate.core.errors import EngineUnavailable, InvalidParameters, TaskCancelled, UpstreamError
from reelgate.core.seeds import request_seed
from reelgate.engines.base import Capabilities, RemoteContext, RemoteJob, RenderOutput, RenderResult
from reelgate.engines.images import SourceImage
from reelgate.engines.openai_videos.client import (
    RemoteRefused,
    RemoteTrouble,
    RemoteVideo,
    VideosClient,
)
from reelgate.engines.remote import Patience, RemoteSlots, mark_sent
from reelgate.logs import task_context
from reelgate.media.sniff import sniff
from reelgate.store.db import Database
from reelgate.wire.requests import parse_size

log = logging.getLogger("reelgate.openai_videos")

#: Times a job the server forgot is created again before the task fails.
MAX_RECREATES = 3
#: How long the server is left alone after it said it is busy.
REST_SECONDS = 30.0
#: Share of the progress bar the server's job takes; the download takes the rest.
JOB_SHARE = 0.95
_MIME = {"image": "image/png", "video": "video/mp4"}


def fingerprint(url: str) -> str:
    """The server's key in the slot table (``upstream_keys``): one per base URL."""
    return "ov-" + hashlib.sha256(url.encode()).hexdigest()[:13]


class OpenAIVideosEngine:
    name = "openai-videos"
    remote = True
    capabilities = Capabilities(
        families=frozenset(Family), last_frame=False, reference_images=0, max_seconds=15
    )

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        client: VideosClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        config = settings.openai_videos
        if not config.url:
            raise EngineUnavailable("the openai-videos engine needs REELGATE_OPENAI_VIDEOS__URL")
        self.url = config.url.rstrip("/")
        self.settings: OpenAIVideosSettings = config
        self.fixed_size = _fixed_size(config.size)
        self.key = fingerprint(self.url)
        self.slots = RemoteSlots(
            db,
            {self.key: self.url.split("://", 1)[-1]},
            concurrency=config.concurrency,
            rest_seconds=REST_SECONDS,
        )
        self.client = client or VideosClient(
            self.url, config.api_key, timeout=config.timeout_seconds
        )
        self.patience = Patience(config.max_wait_seconds, what=self.url, sleep=sleep)

    def ready(self) -> tuple[bool, str]:
        problem = self.client.check()
        if problem:
            return False, problem
        try:
            self.slots.ensure_rows()
            (state,) = self.slots.states()
        except Exception as exc:  # the database itself: say so rather than crash the listing
            return False, f"the slots cannot be read: {exc}"
        return True, f"{self.url} answers; {state.in_use} of {state.concurrency} jobs in use"

    def close(self) -> None:
        self.client.close()

    # -- one task --------------------------------------------------------------------------

    def run(self, job: RemoteJob, ctx: RemoteContext) -> RenderResult:
        state: dict[str, Any] = dict(ctx.checkpoint or {})
        deadline = self.patience.deadline()
        while state.get("stage") != "submitted":
            stage = state.get("stage", "waiting")
            if stage == "waiting":
                state = self._take_slot(job, ctx, deadline)
            elif stage == "preparing":
                state = self._create(job, ctx, state, deadline)
            else:
                raise EngineUnavailable(f"unknown checkpoint stage {stage!r}")
        return self._follow(job, ctx, state, deadline)

    def _take_slot(self, job: RemoteJob, ctx: RemoteContext, deadline: float) -> dict[str, Any]:
        """Wait for a free slot of the server, and hold it (stage ``preparing``)."""
        self.slots.ensure_rows()
        delay = 0.2
        while True:
            self.patience.stop_if_asked(ctx)
            checkpoint = {"stage": "preparing", "idempotencyKey": f"reelgate-{job.task_id}"}
            if self.slots.acquire(job.task_id, ctx.worker_id, checkpoint, exclude=set()):
                return {**checkpoint, "key": self.key}
            if time.monotonic() > deadline:
                raise EngineUnavailable(
                    f"{self.url} had no free slot for {self.settings.max_wait_seconds:.0f} s"
                )
            self.patience.nap(ctx, delay)
            delay = min(delay * 1.5, 2.0)

    def _create(
        self, job: RemoteJob, ctx: RemoteContext, state: dict[str, Any], deadline: float
    ) -> dict[str, Any]:
        """Send the create once; on an answer, record the job id before anything else."""
        fields, inputs = self._request(job, ctx)
        state = mark_sent(ctx, state, idempotent=self.settings.idempotent, what=self.url)
        try:
            with contextlib.ExitStack() as stack:
                files = {
                    name: (path.name, stack.enter_context(path.open("rb")), mime)
                    for name, (path, mime) in inputs.items()
                }
                video = self.client.create(
                    fields, files, idempotency_key=str(state["idempotencyKey"])
                )
        except RemoteRefused as refused:
            raise UpstreamError(refused.code, refused.message) from None
        except RemoteTrouble as trouble:
            if trouble.sent and not self.settings.idempotent:
                raise UpstreamError(
                    "1015",
                    f"the answer to the create was lost ({trouble}); {self.url} may have started "
                    "the job and cannot be asked by key, so reelgate does not send it again",
                ) from None
            self.patience.outage(ctx, deadline, f"creating the job: {trouble}")
            # Not received: may be sent again. Lost: sent again with the same Idempotency-Key.
            return {**state, "sent": trouble.sent}
        state = {
            "stage": "submitted",
            "key": self.key,
            "idempotencyKey": state["idempotencyKey"],
            "remoteId": video.id,
            "recreated": state.get("recreated", 0),
        }
        ctx.save_checkpoint(state)
        log.info("task %s runs at %s as %s", job.task_id, self.url, video.id)
        return state

    def _request(
        self, job: RemoteJob, ctx: RemoteContext
    ) -> tuple[dict[str, str], dict[str, tuple[Path, str]]]:
        """The form of a task's create: its fields, and its files (field -> (path, type))."""
        params = job.params
        model = get_model(job.model)
        if model is None:
            raise InvalidParameters(f"{job.model} is not in this server's catalogue")
        request = model.parse(params)
        fields: dict[str, str] = {"prompt": str(params["prompt"])}
        chosen = self.settings.models.get(model.path) or self.settings.models.get(
            model.family.value
        )
        if chosen:
            fields["model"] = chosen
        mapping = self.settings.fields
        files: dict[str, tuple[Path, str]] = {}
        if model.family is Family.IMAGE_TO_VIDEO:
            _refuse(params, "lastImageUrl", "a last frame")
            if params.get("multiShot"):
                _refuse(params, "multiShot", "several shots")
            first = ctx.fetch_media(str(params["firstImageUrl"]), "firstImageUrl", "image")
            files["input_reference"] = (first, _type_of(first, "image"))
            fields["seconds"] = str(params.get("duration", 5))
            size = self._size(params, first)
            if mapping.size == "size":
                fields["size"] = f"{size[0]}x{size[1]}"
            elif mapping.size == "width_height":
                fields["width"], fields["height"] = str(size[0]), str(size[1])
            if mapping.sound:
                fields[mapping.sound] = "true" if params.get("sound", True) else "false"
        else:
            _refuse(params, "imageUrls", "reference images")
            source = ctx.fetch_media(str(params["videoUrl"]), "videoUrl", "video")
            files["input_reference"] = (source, _type_of(source, "video"))
        if mapping.seed:
            fields[mapping.seed] = str(request_seed(model.path, request.parameters()))
        for name, value in mapping.extra.items():
            fields.setdefault(name, str(value).lower() if isinstance(value, bool) else str(value))
        return fields, files

    def _size(self, params: dict[str, Any], first: Path) -> tuple[int, int]:
        """The task's own ``size``, the configured one, or the first frame's aspect ratio at
        ``long_side``, both sides multiples of ``size_multiple``."""
        if isinstance(params.get("size"), str):
            return parse_size(params["size"])
        if self.fixed_size is not None:
            return self.fixed_size
        with SourceImage(first) as image:
            width, height = image.size
        step, long_side = self.settings.size_multiple, self.settings.long_side
        scale = long_side / max(width, height)
        return (
            max(step, round(width * scale / step) * step),
            max(step, round(height * scale / step) * step),
        )

    # -- following the job -----------------------------------------------------------------

    def _follow(
        self, job: RemoteJob, ctx: RemoteContext, state: dict[str, Any], deadline: float
    ) -> RenderResult:
        """Poll the job to its end, then copy its video into the scratch dir."""
        remote_id = str(state["remoteId"])
        delay = 1.0
        while True:
            if ctx.owner_cancelled():
                self._cancel_remote(job.task_id, remote_id)
                raise TaskCancelled()
            self.patience.stop_if_asked(ctx)
            try:
                video = self.client.retrieve(remote_id)
            except RemoteTrouble as trouble:
                self.patience.outage(ctx, deadline, f"polling {remote_id}: {trouble}")
                continue
            except RemoteRefused as refused:
                if refused.status == 404:
                    return self._recreate(job, ctx, state, remote_id, deadline)
                raise UpstreamError(refused.code, refused.message) from None
            if video.progress is not None:
                ctx.report_progress(JOB_SHARE * min(100.0, video.progress) / 100)
            if video.done:
                return self._finished(ctx, video, deadline)
            wait = video.poll_after if video.poll_after is not None else delay
            delay = min(delay * 1.5, self.settings.max_poll_seconds)
            self.patience.nap(ctx, min(wait, self.settings.max_poll_seconds))

    def _recreate(
        self,
        job: RemoteJob,
        ctx: RemoteContext,
        state: dict[str, Any],
        remote_id: str,
        deadline: float,
    ) -> RenderResult:
        """The server forgot the job (it restarted): create it again, a few times at most."""
        recreated = int(state.get("recreated", 0)) + 1
        if recreated > MAX_RECREATES:
            raise UpstreamError("1015", f"{self.url} lost the job {MAX_RECREATES} times; giving up")
        log.warning(
            "task %s: %s no longer has job %s; creating it again", job.task_id, self.url, remote_id
        )
        fresh = {
            "stage": "preparing",
            "key": self.key,
            "idempotencyKey": f"reelgate-{job.task_id}-{recreated}",
            "recreated": recreated,
        }
        ctx.save_checkpoint(fresh)
        state = fresh
        while state.get("stage") != "submitted":  # a create in trouble is tried again
            state = self._create(job, ctx, state, deadline)
        return self._follow(job, ctx, state, deadline)

    def _finished(self, ctx: RemoteContext, video: RemoteVideo, deadline: float) -> RenderResult:
        if video.status != "completed":
            code = video.error_code if video.error_code.isdigit() else ""
            if video.status in ("cancelled", "deleted") or video.error_code == "cancelled":
                raise UpstreamError("1015", f"the job was cancelled at {self.url}")
            raise UpstreamError(
                code or "1015", video.error_message or f"the job failed at {self.url}"
            )
        output = ctx.scratch_dir / "openai-videos.mp4"
        while True:
            try:
                self.client.download(video.id, output)
                break
            except RemoteTrouble as trouble:
                self.patience.outage(ctx, deadline, f"downloading {video.id}: {trouble}")
            except RemoteRefused as refused:
                raise UpstreamError(refused.code, refused.message) from None
        ctx.report_progress(1.0)
        return RenderResult((RenderOutput(output, _extension(output)),))

    def _cancel_remote(self, task_id: int, remote_id: str) -> None:
        try:
            gone = not self.client.delete(remote_id)
        except (RemoteTrouble, RemoteRefused) as error:
            # Left holding its slot: the sweep tries again.
            log.warning("job %s at %s could not be cancelled: %s", remote_id, self.url, error)
            return
        log.info(
            "task %s cancelled: %s job %s at %s",
            task_id,
            "no longer has" if gone else "cancelled",
            remote_id,
            self.url,
        )
        self.slots.forget(task_id)

    def sweep(self) -> int:
        """Cancel at the server the tasks cancelled here while no worker ran them."""
        done = 0
        for task_id, checkpoint in self.slots.cancelled_tasks():
            remote_id = checkpoint.get("remoteId")
            with task_context(task_id):
                if checkpoint.get("stage") == "submitted" and remote_id:
                    self._cancel_remote(task_id, str(remote_id))
                else:  # nothing was created with the slot
                    self.slots.forget(task_id)
            done += 1
        return done


def _refuse(params: dict[str, Any], field: str, what: str) -> None:
    if params.get(field):
        raise InvalidParameters(f"{field}: the openai-videos engine takes no {what}")


def _fixed_size(value: str | None) -> tuple[int, int] | None:
    """``REELGATE_OPENAI_VIDEOS__SIZE`` as (width, height): any ``WxH``, the server's to judge."""
    if value is None:
        return None
    width, x, height = value.strip().lower().partition("x")
    if not (x and width.isdigit() and height.isdigit() and int(width) and int(height)):
        raise EngineUnavailable(f"REELGATE_OPENAI_VIDEOS__SIZE must be WIDTHxHEIGHT, not {value!r}")
    return int(width), int(height)


def _type_of(path: Path, kind: str) -> str:
    """The content type of an input file, by what its bytes are."""
    with path.open("rb") as f:
        sniffed = sniff(f.read(64))
    guessed = mimetypes.types_map.get(f".{sniffed.ext}") if sniffed is not None else None
    return guessed or _MIME[kind]


def _extension(path: Path) -> str:
    with path.open("rb") as f:
        sniffed = sniff(f.read(64))
    return sniffed.ext if sniffed is not None else "mp4"
