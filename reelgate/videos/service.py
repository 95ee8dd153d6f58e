"""The ``/v1/videos`` use-cases, on the same tasks, keys, coins and limits as the RunningHub API.

A video is a task: ``create`` plans the request onto a catalogue model (``mapping.plan``) and
submits it through ``Service.submit`` (price reserved, queue cap, idempotency, webhooks: all
as for a RunningHub submit); ``get``, ``page`` and ``delete`` read and cancel tasks through the
same service calls. Only the content variants are new: a thumbnail and a spritesheet are made
from the stored MP4 when first asked for, and stored beside it.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

from reelgate.core.errors import (
    InvalidParameters,
    ReelgateError,
    TaskNotFound,
)
from reelgate.core.status import TaskStatus
from reelgate.service import Caller, Service
from reelgate.storage import StoredObject
from reelgate.storage.base import task_folder
from reelgate.store import expiry, repo
from reelgate.store.tables import Task, utcnow
from reelgate.uploads import IncomingUpload
from reelgate.videos import mapping, previews
from reelgate.videos.mapping import InvalidVideoParameter
from reelgate.wire.videos import (
    ContentVariant,
    Video,
    VideoCreateRequest,
    VideoDeleted,
    VideoList,
    task_id_of,
    video_id,
)

#: ``GET /v1/videos``: items per page unless ``limit`` says otherwise, and at most.
DEFAULT_PAGE, MAX_PAGE = 20, 100
#: How each still variant is made.
_MAKERS: dict[str, Callable[[Path, Path], None]] = {
    "thumbnail": previews.thumbnail,
    "spritesheet": previews.spritesheet,
}


class VideoNotReady(ReelgateError):
    """The video has no content (yet): RunningHub's v1 ``outputs`` codes say why (804 running,
    813 queued, 805 failed or cancelled)."""

    def __init__(self, task: Task) -> None:
        self.code = {
            TaskStatus.RUNNING.value: "804",
            TaskStatus.QUEUED.value: "813",
        }.get(task.status, "805")
        state = mapping.status_of(task)
        super().__init__(f"video_{task.id} is {state}: its content exists once it is completed")

    @property
    def message(self) -> str:
        return self.detail or ""


class VideoService:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.runtime = service.runtime
        self.settings = service.settings.videos

    # -- creating ---------------------------------------------------------------------------

    def begin_upload(self, caller: Caller, filename: str) -> IncomingUpload:
        """The ``input_reference`` file of a form, stored as an upload of the caller's."""
        return self.service.begin_upload(
            caller, filename, max_bytes=self.service.settings.media.max_upload_bytes
        )

    def create(
        self,
        caller: Caller,
        request: VideoCreateRequest,
        *,
        upload: tuple[str, str] | None,
        base_url: str,
        idempotency_key: str | None = None,
    ) -> tuple[Video, Task]:
        """Submit the task a request means; the video and its task. ``upload`` is the stored
        ``input_reference`` file: (storage key, kind)."""
        inputs = mapping.Inputs()
        if upload is not None:
            key, kind = upload
            inputs = mapping.Inputs(upload_kind=kind, upload_url=self._link(base_url, key))
        planned = mapping.plan(request, inputs, self.settings)
        task = self.service.submit(
            caller,
            planned.model.path,
            planned.body,
            idempotency_key=idempotency_key,
            links_base_url=base_url,
        )
        return self._video(task), task

    def _link(self, base_url: str, key: str) -> str:
        """A signed link to an uploaded file, for the task's parameters. Its expiry is rounded
        up to the hour, so that a create sent again (same ``Idempotency-Key``, same file) is
        the same request and answers the same task."""
        ttl = self.service.settings.upload_url_ttl_seconds
        expires = math.ceil((time.time() + ttl) / 3600) * 3600
        return self.runtime.signer.url(base_url, key, expires)

    # -- reading ----------------------------------------------------------------------------

    def get(self, caller: Caller, video: str) -> tuple[Video, Task]:
        task = self._task(caller, video)
        return self._video(task), task

    def page(
        self, caller: Caller, *, after: str | None, limit: str | None, order: str | None
    ) -> VideoList:
        """One page of the caller's videos, newest first unless ``order`` is ``asc``."""
        size = _limit(limit)
        if order not in (None, "", "asc", "desc"):
            raise InvalidVideoParameter("order", f"order must be asc or desc, not {order!r}")
        cursor: int | None = None
        if after:
            task_id = task_id_of(after)
            if task_id is None or int(task_id) >= 2**63:
                raise InvalidVideoParameter("after", f"after must be a video id, not {after!r}")
            cursor = int(task_id)
        kept = self.service.settings.retention.results_seconds
        with self.service.db.read() as session:
            tasks = repo.tasks_page(
                session,
                caller.id,
                limit=size + 1,
                after=cursor,
                ascending=order == "asc",
                ended_since=utcnow() - timedelta(seconds=kept) if kept else None,
            )
        data = [self._video(task) for task in tasks[:size]]
        return VideoList(
            data=data,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
            has_more=len(tasks) > size,
        )

    # -- deleting ---------------------------------------------------------------------------

    def delete(self, caller: Caller, video: str) -> VideoDeleted:
        """Delete a video. A queued or running one is cancelled first (refunded, and stopped
        where it runs: a remote job is cancelled there too); then its files are deleted and its
        id answers 404 on both APIs, as when its retention ends."""
        task = self._task(caller, video)
        if task.status in (TaskStatus.QUEUED.value, TaskStatus.RUNNING.value):
            task = self.service.cancel(caller, task.id)
        files = [str(item["key"]) for item in task.results or [] if item.get("key")]
        files += previews.still_keys(task.id)
        with self.service.db.write() as session:
            # Files first, then the mark, in one transaction (as retention does): a failure in
            # between leaves the video as it was, and deleting a file again is no error.
            self.runtime.storage.delete(files)
            self.runtime.storage.delete_folder(task_folder(task.id))
            expiry.expire_tasks(session, [task.id], utcnow())
        return VideoDeleted(id=video_id(task.id))

    # -- content ----------------------------------------------------------------------------

    def content(self, caller: Caller, video: str, variant: str | None) -> StoredObject:
        """The stored file of a completed video: the MP4, or a still made from it when first
        asked for."""
        chosen = _variant(variant)
        task = self._task(caller, video)
        mp4 = _mp4_key(task)
        if mp4 is None:
            raise VideoNotReady(task)
        storage = self.runtime.storage
        if chosen == "video":
            stored = storage.stat(mp4)
        else:
            key = previews.still_key(task.id, chosen)
            stored = storage.stat(key)
            if stored is None:
                self._make_still(mp4, key, _MAKERS[chosen])
                stored = storage.stat(key)
        if stored is None:
            raise TaskNotFound(f"video_{task.id} has no stored file any more")
        return stored

    def read(self, stored: StoredObject, start: int, end: int) -> Iterator[bytes]:
        return self.service.read_file(stored, start, end)

    def _make_still(self, mp4: str, key: str, make: Callable[[Path, Path], None]) -> None:
        storage = self.runtime.storage
        with tempfile.TemporaryDirectory(prefix="reelgate-still-") as scratch:
            source = storage.local_path(mp4)
            if source is None:
                source = Path(scratch) / "video.mp4"
                if not storage.download(mp4, source):
                    raise TaskNotFound(f"{mp4} is no longer stored")
            still = Path(scratch) / Path(key).name
            make(source, still)
            # Two requests at once may both make it: the same bytes, stored twice.
            storage.put_file(key, still, move=True)

    def _video(self, task: Task) -> Video:
        retention = self.service.settings.retention.results_seconds
        return mapping.video_of(task, self.settings, retention)

    def _task(self, caller: Caller, video: str) -> Task:
        task_id = task_id_of(video)
        if task_id is None:
            raise TaskNotFound(f"no video {video!r}: video ids are video_ and a task id")
        return self.service.get_task(caller, task_id)


def _limit(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_PAGE
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise InvalidVideoParameter("limit", f"limit must be 1–{MAX_PAGE}, not {value!r}")
    return int(value)


def _variant(value: str | None) -> ContentVariant:
    if value in (None, "", "video"):
        return "video"
    if value == "thumbnail":
        return "thumbnail"
    if value == "spritesheet":
        return "spritesheet"
    raise InvalidVideoParameter(
        "variant", f"variant must be video, thumbnail or spritesheet, not {value!r}"
    )


def _mp4_key(task: Task) -> str | None:
    if task.status != TaskStatus.SUCCESS.value:
        return None
    for item in task.results or []:
        if str(item.get("outputType", "")).lower() == "mp4" and item.get("key"):
            return str(item["key"])
    raise InvalidParameters(f"video_{task.id} has no MP4 output")
