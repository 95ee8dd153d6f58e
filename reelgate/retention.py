"""Retention: finished tasks and uploaded files are deleted once their time is up.

A task is kept ``retention.results_seconds`` after it finished (SUCCESS, FAILED or CANCEL); then
its result files (and the stills ``/v1/videos`` made of them, and anything a lost claim of it
left in its folder) are deleted and the task is marked expired, and its id answers ``1004`` as an
unknown one does (it already does from the moment its time is up, swept or not). An uploaded
file is kept ``retention.uploads_seconds`` after its newest upload: uploads of the same bytes
share one file, which goes only when the last of them expires. 0 keeps them for ever.

Every worker sweeps now and then (``sweep``); ``reelgate gc`` runs the same sweep at once, or
only reports what it would delete (``collect(dry_run=True)``). Sweepers take disjoint batches
(``store/expiry.py``), so two of them never delete the same file twice.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from reelgate.runtime import Runtime
from reelgate.storage.base import task_folder
from reelgate.store import expiry
from reelgate.store.expiry import ExpiredFile, ExpiredTask
from reelgate.store.tables import Task, utcnow
from reelgate.videos.previews import still_keys

log = logging.getLogger("reelgate.retention")


@dataclass
class Swept:
    """What a sweep deleted, or would delete."""

    #: Finished tasks that expire, their result files and those files' bytes.
    tasks: int = 0
    result_files: int = 0
    result_bytes: int = 0
    #: When the longest-finished of them finished.
    oldest_task: datetime | None = None
    #: Upload rows that expire, the files they share and those files' bytes.
    uploads: int = 0
    upload_files: int = 0
    upload_bytes: int = 0
    #: When the oldest of those uploads came.
    oldest_upload: datetime | None = None

    @property
    def empty(self) -> bool:
        return not (self.tasks or self.uploads)

    def add_tasks(self, tasks: list[ExpiredTask], sizes: list[int]) -> None:
        self.tasks += len(tasks)
        self.result_files += len(sizes)
        self.result_bytes += sum(sizes)
        self.oldest_task = _oldest(self.oldest_task, [task.finished_at for task in tasks])

    def add_files(self, files: list[ExpiredFile]) -> None:
        self.uploads += sum(len(file.upload_ids) for file in files)
        self.upload_files += len(files)
        self.upload_bytes += sum(file.size for file in files)
        self.oldest_upload = _oldest(self.oldest_upload, [file.oldest for file in files])


def is_expired(task: Task, settings_seconds: int, now: datetime | None = None) -> bool:
    """Whether ``task`` is past its retention: swept already, or finished longer ago than
    ``settings_seconds`` (0: never)."""
    if task.expired_at is not None:
        return True
    if not settings_seconds or task.finished_at is None:
        return False
    return task.finished_at < (now or utcnow()) - timedelta(seconds=settings_seconds)


def sweep(runtime: Runtime, *, stop: threading.Event | None = None) -> Swept:
    """Delete what has expired, batch by batch, until nothing is left (or ``stop`` is set)."""
    swept = collect(runtime, measure=False, stop=stop)
    if not swept.empty:
        log.info(
            "retention: %d finished tasks expired (%d result files deleted), %d uploads "
            "expired (%d files deleted)",
            swept.tasks,
            swept.result_files,
            swept.uploads,
            swept.upload_files,
        )
    return swept


def collect(
    runtime: Runtime,
    *,
    dry_run: bool = False,
    measure: bool = True,
    now: datetime | None = None,
    stop: threading.Event | None = None,
) -> Swept:
    """Delete the files of expired tasks and uploads and mark them expired; with ``dry_run``,
    only say what that would delete. ``measure`` counts the bytes of result files stored
    without their size (older results), at the cost of a look-up each."""
    settings = runtime.settings.retention
    now = now or utcnow()
    swept = Swept()
    if settings.results_seconds:
        cutoff = now - timedelta(seconds=settings.results_seconds)
        if dry_run:
            with runtime.db.read() as session:
                tasks = expiry.due_tasks(session, cutoff)
            swept.add_tasks(tasks, _result_sizes(runtime, tasks, measure))
        else:
            while not (stop and stop.is_set()):
                with runtime.db.write() as session:
                    tasks = expiry.claim_tasks(session, cutoff, settings.batch_size)
                    if not tasks:
                        break
                    sizes = _result_sizes(runtime, tasks, measure)
                    runtime.storage.delete(
                        [item["key"] for task in tasks for item in task.results if "key" in item]
                        # and the stills /v1/videos made of them, if it made any
                        + [key for task in tasks for key in still_keys(task.id)]
                    )
                    # and whatever else is in their folders: the outputs of a claim that lost
                    # its task (a worker killed between storing them and finishing)
                    for task in tasks:
                        runtime.storage.delete_folder(task_folder(task.id))
                    expiry.expire_tasks(session, [task.id for task in tasks], now)
                swept.add_tasks(tasks, sizes)
    if settings.uploads_seconds:
        cutoff = now - timedelta(seconds=settings.uploads_seconds)
        if dry_run:
            with runtime.db.read() as session:
                swept.add_files(expiry.due_files(session, cutoff))
        else:
            while not (stop and stop.is_set()):
                with runtime.db.write() as session:
                    files = expiry.claim_files(session, cutoff, settings.batch_size)
                    if not files:
                        break
                    runtime.storage.delete(file.storage_key for file in files)
                    expiry.expire_uploads(
                        session, [i for file in files for i in file.upload_ids], now
                    )
                swept.add_files(files)
    return swept


def _result_sizes(runtime: Runtime, tasks: list[ExpiredTask], measure: bool) -> list[int]:
    """The size of each result file of ``tasks``: as recorded, else as stored (when
    ``measure``; 0 for a file that is gone), else 0."""
    sizes = []
    for task in tasks:
        for item in task.results:
            size = item.get("size")
            if not isinstance(size, int) and measure and "key" in item:
                stored = runtime.storage.stat(str(item["key"]))
                size = stored.size if stored else 0
            sizes.append(size if isinstance(size, int) else 0)
    return sizes


def _oldest(current: datetime | None, more: list[datetime]) -> datetime | None:
    return min([*more, current] if current else more, default=None)
