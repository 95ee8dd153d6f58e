"""Batches: many jobs, within the key's capacity, resumable after a crash without paying twice.

    from reelgate.client import Batch

    with Batch("jobs.jsonl") as batch:  # journal: jobs.jsonl.journal
        result = batch.run(concurrency=4, output="out/")
    for job in result.jobs:
        print(job.job_id, job.state, job.task_id, job.files)

A job is ``{"model": "<model path>", "payload": {...}, "id"?: "..."}``: one line of a JSONL file
(blank lines and lines starting with ``#`` are skipped; relative file paths in media fields are
relative to the jobs file), or one mapping of a list. It is known by its ``id``, or else by its
content.

A ``BatchJournal`` (one SQLite file) records every step before and after it happens:

    pending ─▶ submitting ─▶ submitted ─▶ succeeded ─▶ done
                    │              └────▶ failed
                    └──▶ unknown  (the answer was lost and the server cannot de-duplicate)

so that running the same batch again after Ctrl-C, a crash, ``kill -9`` or a reboot never redoes a
finished job and never resubmits a submitted one: it queries it. A job caught in ``submitting`` is
sent again with the same ``Idempotency-Key`` when the server honours it (reelgate), which returns
the original task; on RunningHub it becomes ``unknown`` and is left for a human to check (then
``resubmit_unknown=True``). At most ``concurrency`` tasks are in flight, never more than the key's
``concurrentLimit``, and a submit refused for capacity waits for a free slot.

Progress is reported through ``on_event``, called with a ``BatchStarted`` and then a
``BatchJobChanged`` for each change the journal records.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeAlias

import anyio

from reelgate.client import (
    REQUEST_MODELS,
    USE_CLIENT_DEFAULT,
    AsyncClient,
    ReelgateError,
    RequestValidationError,
    ResponseLost,
    RetryableError,
    StillRunning,
    TaskStatus,
    UploadedFile,
)
from reelgate.client._config import DEFAULT_UPLOAD_REUSE_SECONDS, UseClientDefault, resolve_base_url

__all__ = [
    "DEFAULT_CAPACITY_PATIENCE",
    "DEFAULT_CONCURRENCY",
    "Batch",
    "BatchEvent",
    "BatchJob",
    "BatchJobChanged",
    "BatchJournal",
    "BatchResult",
    "BatchStarted",
    "JobState",
    "JournalUploadCache",
    "make_jobs",
    "read_jobs",
]

#: Most tasks in flight when not told otherwise (the key's ``concurrentLimit`` caps it too).
DEFAULT_CONCURRENCY: Final = 4
#: How long a job keeps retrying a submit the server refused for capacity (421, 1003, …), seconds.
DEFAULT_CAPACITY_PATIENCE: Final = 600.0


class JobState(enum.StrEnum):
    """Where a job of a batch stands, as its journal records it."""

    #: Not submitted yet.
    PENDING = "pending"
    #: About to be submitted, or submitted with the answer not yet recorded.
    SUBMITTING = "submitting"
    #: The server created the task (``task_id``); it is being waited for.
    SUBMITTED = "submitted"
    #: The task succeeded; its outputs are not saved yet.
    SUCCEEDED = "succeeded"
    #: Finished: the task succeeded and its outputs are saved (``files``).
    DONE = "done"
    #: Finished: the submit was refused, or the task failed or was cancelled (``error``).
    FAILED = "failed"
    #: Finished until a human checks: the submit's answer was lost and the server cannot
    #: de-duplicate it, so it may or may not have created a task.
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        """Whether a run leaves the job alone (``UNKNOWN`` unless ``resubmit_unknown``)."""
        return self in (JobState.DONE, JobState.FAILED, JobState.UNKNOWN)


@dataclass(eq=False)
class BatchJob:
    """One job of a batch and what its journal knows about it."""

    #: The ``id`` given, or a hash of the model and payload.
    job_id: str
    #: The model path, e.g. ``kling-video-o3-pro/image-to-video``.
    model: str
    #: The request body, as written (local paths not yet uploaded).
    payload: dict[str, Any]
    #: The line of the jobs file (or the position in the list), from 1.
    line: int = 0
    state: JobState = JobState.PENDING
    #: The ``Idempotency-Key`` of its submit, on servers that honour one.
    idempotency_key: str | None = None
    task_id: str | None = None
    #: The task's last known status (``TaskStatus`` value).
    status: str | None = None
    error: str | None = None
    #: The saved outputs (``None`` until it is done, or when outputs are not saved).
    files: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        """The job as the CLI's ``--json`` summary shows it (wire names, ``taskId``)."""
        return {
            "id": self.job_id,
            "line": self.line,
            "model": self.model,
            "state": self.state.value,
            "taskId": self.task_id,
            "status": self.status,
            "error": self.error,
            "files": self.files or [],
        }


def make_jobs(items: Iterable[Mapping[str, Any]], *, source: str = "jobs") -> list[BatchJob]:
    """Jobs from ``{"model", "payload", "id"?}`` mappings, each with a stable id.

    The same request given twice without an ``id`` makes two distinct jobs (``<hash>#2``); the
    same ``id`` twice is an error. ``source`` names the items in error messages.
    """
    return _numbered_jobs(enumerate(items, 1), source)


def read_jobs(path: str | Path) -> list[BatchJob]:
    """The jobs of a JSONL file, each with a stable id (see ``make_jobs``)."""
    path = Path(path)
    numbered: list[tuple[int, object]] = []
    for number, text in enumerate(path.read_text().splitlines(), 1):
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        try:
            numbered.append((number, json.loads(text)))
        except json.JSONDecodeError as exc:
            raise RequestValidationError(f"{path.name}:{number}: not valid JSON: {exc}") from None
    return _numbered_jobs(numbered, path.name)


def _numbered_jobs(numbered: Iterable[tuple[int, object]], source: str) -> list[BatchJob]:
    jobs: list[BatchJob] = []
    seen: dict[str, int] = {}
    for number, item in numbered:
        if (
            not isinstance(item, Mapping)
            or not isinstance(item.get("model"), str)
            or not isinstance(item.get("payload"), dict)
        ):
            raise RequestValidationError(
                f'{source}:{number}: expected {{"model": "...", "payload": {{...}}, "id"?: "..."}}'
            )
        canonical = json.dumps([item["model"], item["payload"]], sort_keys=True)
        job_id = str(item.get("id") or hashlib.sha256(canonical.encode()).hexdigest()[:16])
        seen[job_id] = seen.get(job_id, 0) + 1
        if item.get("id") and seen[job_id] > 1:
            raise RequestValidationError(f"{source}:{number}: duplicate job id {job_id!r}")
        if seen[job_id] > 1:  # the same request twice on purpose: a second, distinct job
            job_id = f"{job_id}#{seen[job_id]}"
        jobs.append(BatchJob(job_id, item["model"], dict(item["payload"]), number))
    return jobs


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    line INTEGER NOT NULL,
    model TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    idempotency_key TEXT,
    task_id TEXT,
    status TEXT,
    error TEXT,
    files TEXT,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS uploads (
    base_url TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    download_url TEXT NOT NULL,
    type TEXT NOT NULL,
    file_name TEXT NOT NULL,
    size INTEGER NOT NULL,
    uploaded_at REAL NOT NULL,
    PRIMARY KEY (base_url, sha256)
);
"""


class BatchJournal:
    """A batch's durable record: one SQLite file, every change committed (and synced) at once.

    A journal belongs to one server (``base_url``): opening it for another raises
    ``RequestValidationError``. It also remembers uploads (``uploads``), so a resumed batch does
    not upload the same files again.
    """

    def __init__(self, path: str | Path, base_url: str) -> None:
        self.path = Path(path)
        self.base_url = resolve_base_url(base_url)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as error:  # a folder, or in a folder that does not exist
            raise RequestValidationError(f"cannot use {self.path} as a journal: {error}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key = 'base_url'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES ('base_url', ?)", (self.base_url,))
            elif row[0] != self.base_url:
                raise RequestValidationError(
                    f"the journal {self.path} belongs to {row[0]}, not {self.base_url}; "
                    f"use another journal file to start a new one"
                )
        except sqlite3.Error as error:  # a file that is not a journal, or not writable
            self._db.close()
            raise RequestValidationError(f"cannot use {self.path} as a journal: {error}") from None
        except BaseException:
            self._db.close()
            raise
        #: The journal's memory of uploads, to give a client as ``upload_cache=``.
        self.uploads = JournalUploadCache(self)

    def __repr__(self) -> str:
        return f"BatchJournal({str(self.path)!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> BatchJournal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def load(self, jobs: Iterable[BatchJob]) -> list[BatchJob]:
        """Record new jobs as they are; give known ones their recorded state. Returns the jobs."""
        loaded = list(jobs)
        for job in loaded:
            row = self._db.execute(
                "SELECT state, idempotency_key, task_id, status, error, files FROM jobs "
                "WHERE job_id = ?",
                (job.job_id,),
            ).fetchone()
            if row is None:
                self._write(job, insert=True)
                continue
            job.state = JobState(row[0])
            job.idempotency_key, job.task_id, job.status, job.error = row[1:5]
            job.files = json.loads(row[5]) if row[5] else None
        return loaded

    def save(self, job: BatchJob) -> None:
        """Record the job's current state (it must have been ``load``-ed)."""
        self._write(job, insert=False)

    def _write(self, job: BatchJob, *, insert: bool) -> None:
        values = (
            job.state.value,
            job.idempotency_key,
            job.task_id,
            job.status,
            job.error,
            json.dumps(job.files) if job.files is not None else None,
            time.time(),
        )
        if insert:
            self._db.execute(
                "INSERT INTO jobs (state, idempotency_key, task_id, status, error, files, "
                "updated_at, job_id, line, model, payload) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*values, job.job_id, job.line, job.model, json.dumps(job.payload)),
            )
        else:
            self._db.execute(
                "UPDATE jobs SET state = ?, idempotency_key = ?, task_id = ?, status = ?, "
                "error = ?, files = ?, updated_at = ? WHERE job_id = ?",
                (*values, job.job_id),
            )


class JournalUploadCache:
    """An ``UploadCache`` kept in a journal, so a resumed batch does not upload again."""

    def __init__(
        self, journal: BatchJournal, reuse_seconds: float = DEFAULT_UPLOAD_REUSE_SECONDS
    ) -> None:
        self._db = journal._db
        self.reuse_seconds = reuse_seconds

    def get(self, base_url: str, sha256: str) -> UploadedFile | None:
        row = self._db.execute(
            "SELECT download_url, type, file_name, size FROM uploads WHERE base_url = ? AND "
            "sha256 = ? AND uploaded_at > ?",
            (base_url, sha256, time.time() - self.reuse_seconds),
        ).fetchone()
        if row is None:
            return None
        return UploadedFile(
            download_url=row[0], type=row[1], file_name=row[2], size=row[3], sha256=sha256
        )

    def put(self, base_url: str, uploaded: UploadedFile) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO uploads VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                base_url,
                uploaded.sha256,
                uploaded.download_url,
                uploaded.type,
                uploaded.file_name,
                uploaded.size,
                time.time(),
            ),
        )


@dataclass(frozen=True)
class BatchStarted:
    """A run begins: how many jobs, how many were already finished, how many at a time."""

    total: int
    #: Jobs finished by earlier runs, left alone by this one.
    finished: int
    #: Most tasks in flight: ``concurrency``, capped by the key's ``concurrentLimit``.
    limit: int
    journal: Path


@dataclass(frozen=True)
class BatchJobChanged:
    """The journal recorded a change of a job (a new state, or an error on the way)."""

    #: The job, live: it may have changed again since.
    job: BatchJob
    previous: JobState
    #: The job's state when this change was recorded.
    state: JobState

    @property
    def finished(self) -> bool:
        """Whether this change finished the job (it reached a final state)."""
        return self.state.is_final and not self.previous.is_final


#: What ``on_event`` receives.
BatchEvent: TypeAlias = BatchStarted | BatchJobChanged


@dataclass(frozen=True)
class BatchResult:
    """Every job of a batch after a run, in order."""

    jobs: Sequence[BatchJob]
    #: Most tasks that were in flight at once.
    limit: int

    @property
    def done(self) -> list[BatchJob]:
        return [j for j in self.jobs if j.state is JobState.DONE]

    @property
    def failed(self) -> list[BatchJob]:
        """Jobs that failed, or whose submit has an unknown outcome."""
        return [j for j in self.jobs if j.state in (JobState.FAILED, JobState.UNKNOWN)]

    @property
    def unfinished(self) -> list[BatchJob]:
        """Jobs still running (their wait timed out) or interrupted; run again to resume."""
        return [j for j in self.jobs if not j.state.is_final]

    @property
    def ok(self) -> bool:
        """Whether every job is done."""
        return all(j.state is JobState.DONE for j in self.jobs)

    def to_json(self) -> dict[str, Any]:
        return {"jobs": [j.to_json() for j in self.jobs]}


class Batch:
    """Jobs and their journal; ``run()`` (or ``await arun()``) does what is left to do.

    ``jobs`` is a JSONL file (the journal defaults to ``<file>.journal`` next to it, relative
    paths in media fields are relative to the file) or an iterable of ``{"model", "payload",
    "id"?}`` mappings (then ``journal`` is required, and relative paths are relative to
    ``base_dir``, by default the current directory). ``base_url`` and ``api_key`` default as for
    ``AsyncClient``. Close the batch (or use it as a context manager) to close the journal.
    """

    def __init__(
        self,
        jobs: str | Path | Iterable[Mapping[str, Any]],
        *,
        journal: str | Path | None = None,
        base_dir: str | Path | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
    ) -> None:
        if isinstance(jobs, str | Path):
            source = Path(jobs)
            listed = read_jobs(source)
            journal_path = Path(journal) if journal else source.with_name(source.name + ".journal")
            folder = Path(base_dir) if base_dir is not None else source.parent
        else:
            if journal is None:
                raise RequestValidationError("a batch of listed jobs needs journal=<file>")
            listed = make_jobs(jobs)
            journal_path = Path(journal)
            folder = Path(base_dir) if base_dir is not None else Path(".")
        self.base_dir = folder
        self._api_key = api_key
        self.journal = BatchJournal(journal_path, resolve_base_url(base_url))
        try:
            #: The jobs, in order, with their recorded state.
            self.jobs = self.journal.load(listed)
        except BaseException:
            self.journal.close()
            raise

    def __repr__(self) -> str:
        return f"Batch({len(self.jobs)} jobs, journal={str(self.journal.path)!r})"

    @property
    def base_url(self) -> str:
        return self.journal.base_url

    @property
    def uploads(self) -> JournalUploadCache:
        """The journal's upload memory: give it as ``upload_cache=`` to a client of your own."""
        return self.journal.uploads

    def close(self) -> None:
        self.journal.close()

    def __enter__(self) -> Batch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def run(
        self,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        output: str | Path | None = None,
        timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
        resubmit_unknown: bool = False,
        capacity_patience: float = DEFAULT_CAPACITY_PATIENCE,
        on_event: Callable[[BatchEvent], None] | None = None,
    ) -> BatchResult:
        """Run the batch in a new event loop (see ``arun``, which takes the same arguments)."""
        return anyio.run(
            functools.partial(
                self.arun,
                concurrency=concurrency,
                output=output,
                timeout=timeout,
                resubmit_unknown=resubmit_unknown,
                capacity_patience=capacity_patience,
                on_event=on_event,
            )
        )

    async def arun(
        self,
        client: AsyncClient | None = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        output: str | Path | None = None,
        timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
        resubmit_unknown: bool = False,
        capacity_patience: float = DEFAULT_CAPACITY_PATIENCE,
        on_event: Callable[[BatchEvent], None] | None = None,
    ) -> BatchResult:
        """Submit, wait for and save every job not finished yet; return every job.

        - ``client``: an ``AsyncClient`` for the journal's server (left open); by default one is
          made (and closed) with ``upload_cache=self.uploads``.
        - ``concurrency``: most tasks in flight, capped by the key's ``concurrentLimit``.
        - ``output``: where to save outputs (``<taskId>_<n>.<ext>``); ``None`` saves nothing.
        - ``timeout``: longest wait per task (default: the client's ``wait_timeout``); a task
          still running then stays ``submitted`` and is waited for by the next run.
        - ``resubmit_unknown``: submit again the jobs whose earlier submit has an unknown
          outcome (check first that the server has no such task).
        - ``capacity_patience``: how long a submit refused for capacity keeps being retried.
        - ``on_event``: called (in the event loop: keep it quick) with a ``BatchStarted``, then
          a ``BatchJobChanged`` for each change recorded; an exception it raises stops the run.

        A job's errors are recorded in the job (``error``), not raised; errors before any job
        starts (a wrong key, the wrong server) are raised. Interrupting the run (Ctrl-C, a
        cancelled scope) loses nothing: run the batch again to resume.
        """
        if concurrency < 1:
            raise RequestValidationError(f"concurrency must be at least 1, got {concurrency}")
        if client is not None and client.base_url != self.base_url:
            raise RequestValidationError(
                f"the client is for {client.base_url}, the journal for {self.base_url}"
            )
        own = client is None
        active = client or AsyncClient(self.base_url, self._api_key, upload_cache=self.uploads)
        try:
            runner = _Runner(
                active,
                self.journal,
                self.jobs,
                base_dir=self.base_dir,
                output=Path(output) if output is not None else None,
                timeout=timeout,
                capacity_patience=capacity_patience,
                on_event=on_event,
            )
            limit = await _limit(active, concurrency)
            redo = JobState.UNKNOWN if resubmit_unknown else None
            runner.emit(
                BatchStarted(
                    total=len(self.jobs),
                    finished=sum(j.state.is_final and j.state is not redo for j in self.jobs),
                    limit=limit,
                    journal=self.journal.path,
                )
            )
            if resubmit_unknown:
                runner.reset_unknown()
            await runner.run(limit)
        finally:
            if own:
                await active.aclose()
        return BatchResult(list(self.jobs), limit)


async def _limit(client: AsyncClient, concurrency: int) -> int:
    """``concurrency``, capped by the key's ``concurrentLimit`` when the key may read it."""
    try:
        capacity = (await client.queue_status()).concurrent_limit
    except ReelgateError:
        return concurrency  # not every key may read its queue status
    return max(1, min(concurrency, capacity)) if capacity else concurrency


class _Runner:
    """Moves each unfinished job along its states, at most ``limit`` at a time."""

    def __init__(
        self,
        client: AsyncClient,
        journal: BatchJournal,
        jobs: list[BatchJob],
        *,
        base_dir: Path,
        output: Path | None,
        timeout: float | UseClientDefault | None,
        capacity_patience: float,
        on_event: Callable[[BatchEvent], None] | None,
    ) -> None:
        self.client = client
        self.journal = journal
        self.jobs = jobs
        self.base_dir = base_dir
        self.output = output
        self.timeout = timeout
        self.capacity_patience = capacity_patience
        self.on_event = on_event

    def emit(self, event: BatchEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def reset_unknown(self) -> None:
        for job in self.jobs:
            if job.state is JobState.UNKNOWN:
                self._set(job, JobState.PENDING, idempotency_key=None, error=None)

    async def run(self, limit: int) -> None:
        slots = anyio.Semaphore(limit)
        async with anyio.create_task_group() as group:
            for job in self.jobs:
                if not job.state.is_final:
                    group.start_soon(self._guarded, job, slots)

    def _set(self, job: BatchJob, state: JobState, **changes: Any) -> None:
        """Change the job, record it, then tell ``on_event``."""
        previous = job.state
        job.state = state
        for name, value in changes.items():
            setattr(job, name, value)
        self.journal.save(job)
        self.emit(BatchJobChanged(job, previous, state))

    async def _guarded(self, job: BatchJob, slots: anyio.Semaphore) -> None:
        async with slots:
            try:
                await self._advance(job)
            except StillRunning:
                pass  # stays ``submitted``: the next run queries it again
            except ReelgateError as error:
                described = f"{type(error).__name__}: {error}"
                if job.state in (JobState.PENDING, JobState.SUBMITTING):
                    if isinstance(error, ResponseLost):
                        self._set(job, JobState.UNKNOWN, error=str(error))
                    else:
                        self._set(job, JobState.FAILED, error=described)
                else:  # the task exists: keep its state, so the next run picks it up again
                    self._set(job, job.state, error=described)

    async def _advance(self, job: BatchJob) -> None:
        if job.state is JobState.SUBMITTING and not self.client.idempotency:
            self._set(
                job,
                JobState.UNKNOWN,
                error="the submit's answer was lost and this server cannot de-duplicate it; "
                "check the account's tasks, then run again with resubmit_unknown "
                "(--resubmit-unknown) if it does not exist",
            )
            return
        if job.state in (JobState.PENDING, JobState.SUBMITTING):
            await self._submit(job)
        if job.state is JobState.SUBMITTED:
            assert job.task_id is not None
            info = await self.client.task(job.task_id).wait(self.timeout, raise_on_failure=False)
            if info.status is TaskStatus.SUCCESS:
                self._set(job, JobState.SUCCEEDED, status=info.status.value, error=None)
            else:
                self._set(
                    job,
                    JobState.FAILED,
                    status=info.status.value,
                    error=f"[{info.error_code}] {info.error_message}".strip(),
                )
        if job.state is JobState.SUCCEEDED:
            files: list[str] = []
            if self.output is not None:
                assert job.task_id is not None
                info = await self.client.query(job.task_id)
                files = [str(p) for p in await self.client.download(info, self.output)]
            self._set(job, JobState.DONE, files=files, error=None)

    async def _submit(self, job: BatchJob) -> None:
        payload = _resolve_media(job, self.base_dir)
        key = job.idempotency_key or (uuid.uuid4().hex if self.client.idempotency else None)
        self._set(job, JobState.SUBMITTING, idempotency_key=key)
        started = time.monotonic()
        while True:
            try:
                task = await self.client.run(job.model, payload, idempotency_key=key)
                break
            except RetryableError as error:
                # The server refused for capacity; no task exists. Wait for a slot to free up.
                if not error.submit_safe or time.monotonic() - started > self.capacity_patience:
                    raise
                await anyio.sleep(error.retry_after or 5.0)
        self._set(job, JobState.SUBMITTED, task_id=task.id, status=task.status.value)


def _resolve_media(job: BatchJob, base_dir: Path) -> dict[str, Any]:
    """The payload with relative local paths in media fields made relative to ``base_dir``."""
    model = REQUEST_MODELS.get(job.model.strip("/"))
    fields = (
        model.media_fields
        if model
        else tuple(k for k in job.payload if k.endswith(("Url", "Urls")))
    )

    def fix(value: Any) -> Any:
        if isinstance(value, str) and "://" not in value and not value.startswith("data:"):
            path = Path(value).expanduser()
            return path if path.is_absolute() else base_dir / path
        return value

    body = dict(job.payload)
    for key in fields:
        if key in body:
            value = body[key]
            body[key] = [fix(v) for v in value] if isinstance(value, list) else fix(value)
    return body
