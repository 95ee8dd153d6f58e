"""``reelgate batch JOBS.jsonl``: many tasks, within the key's capacity, resumable after a crash.

Each line of the jobs file is ``{"model": "<model path>", "payload": {...}, "id"?: "..."}``
(blank lines and lines starting with ``#`` are skipped; relative file paths in media fields are
relative to the jobs file). A job is known by its ``id``, or else by its content.

A journal (SQLite, next to the jobs file) records every step before and after it happens:

    pending ─▶ submitting ─▶ submitted ─▶ succeeded ─▶ done
                    │              └────▶ failed
                    └──▶ unknown  (the answer was lost and the server cannot de-duplicate)

so that running the same command again after Ctrl-C, a crash or a reboot never redoes a finished
job and never resubmits a submitted one: it queries it. A job caught in ``submitting`` is sent
again with the same ``Idempotency-Key`` when the server honours it (reelgate), which returns the
original task; on RunningHub it becomes ``unknown`` and is left for a human to check.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from reelgate.cli._output import (
    EXIT_DONE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_RUNNING,
    err,
    fail,
    out,
    print_json,
)
from reelgate.client import (
    REQUEST_MODELS,
    AsyncClient,
    AsyncTask,
    ReelgateError,
    RequestValidationError,
    ResponseLost,
    RetryableError,
    StillRunning,
    TaskStatus,
    UploadedFile,
)
from reelgate.client._config import DEFAULT_UPLOAD_REUSE_SECONDS, resolve_base_url

#: Journal states; a job in one of FINAL is never touched again.
PENDING, SUBMITTING, SUBMITTED, SUCCEEDED, DONE, FAILED, UNKNOWN = (
    "pending",
    "submitting",
    "submitted",
    "succeeded",
    "done",
    "failed",
    "unknown",
)
FINAL = frozenset({DONE, FAILED, UNKNOWN})
#: How long a job keeps retrying a submit the server refused for capacity (421, 1003, …).
CAPACITY_PATIENCE = 600.0

SCHEMA = """
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


@dataclass
class Job:
    job_id: str
    line: int
    model: str
    payload: dict[str, Any]
    state: str = PENDING
    idempotency_key: str | None = None
    task_id: str | None = None
    status: str | None = None
    error: str | None = None
    files: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.job_id,
            "line": self.line,
            "model": self.model,
            "state": self.state,
            "taskId": self.task_id,
            "status": self.status,
            "error": self.error,
            "files": self.files or [],
        }


def read_jobs(path: Path) -> list[Job]:
    """The jobs of a JSONL file, each with a stable id."""
    jobs: list[Job] = []
    seen: dict[str, int] = {}
    for number, text in enumerate(path.read_text().splitlines(), 1):
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        try:
            item = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RequestValidationError(f"{path.name}:{number}: not valid JSON: {exc}") from None
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("model"), str)
            or not isinstance(item.get("payload"), dict)
        ):
            raise RequestValidationError(
                f"{path.name}:{number}: expected "
                '{"model": "...", "payload": {...}, "id"?: "..."}'
            )
        canonical = json.dumps([item["model"], item["payload"]], sort_keys=True)
        job_id = str(item.get("id") or hashlib.sha256(canonical.encode()).hexdigest()[:16])
        seen[job_id] = seen.get(job_id, 0) + 1
        if item.get("id") and seen[job_id] > 1:
            raise RequestValidationError(f"{path.name}:{number}: duplicate job id {job_id!r}")
        if seen[job_id] > 1:  # the same request twice on purpose: a second, distinct job
            job_id = f"{job_id}#{seen[job_id]}"
        jobs.append(Job(job_id, number, item["model"], item["payload"]))
    return jobs


def resolve_media(job: Job, base_dir: Path) -> dict[str, Any]:
    """The payload with relative local paths in media fields made relative to the jobs file."""
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


class Journal:
    """The batch's durable record (one SQLite file); every change is committed at once."""

    def __init__(self, path: Path, base_url: str) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        row = self.db.execute("SELECT value FROM meta WHERE key = 'base_url'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('base_url', ?)", (base_url,))
        elif row[0] != base_url:
            raise RequestValidationError(
                f"the journal {path} belongs to {row[0]}, not {base_url}; "
                f"pass --journal to start a new one"
            )

    def close(self) -> None:
        self.db.close()

    def load(self, jobs: list[Job]) -> None:
        """Add new jobs; take the recorded state of known ones."""
        for job in jobs:
            row = self.db.execute(
                "SELECT state, idempotency_key, task_id, status, error, files FROM jobs "
                "WHERE job_id = ?",
                (job.job_id,),
            ).fetchone()
            if row is None:
                self.save(job, insert=True)
                continue
            job.state, job.idempotency_key, job.task_id, job.status, job.error = row[:5]
            job.files = json.loads(row[5]) if row[5] else None

    def save(self, job: Job, *, insert: bool = False) -> None:
        values = (
            job.state,
            job.idempotency_key,
            job.task_id,
            job.status,
            job.error,
            json.dumps(job.files) if job.files is not None else None,
            time.time(),
        )
        if insert:
            self.db.execute(
                "INSERT INTO jobs (state, idempotency_key, task_id, status, error, files, "
                "updated_at, job_id, line, model, payload) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*values, job.job_id, job.line, job.model, json.dumps(job.payload)),
            )
        else:
            self.db.execute(
                "UPDATE jobs SET state = ?, idempotency_key = ?, task_id = ?, status = ?, "
                "error = ?, files = ?, updated_at = ? WHERE job_id = ?",
                (*values, job.job_id),
            )


class JournalUploadCache:
    """Uploads remembered in the journal, so a resumed batch does not upload again."""

    def __init__(self, journal: Journal, reuse_seconds: float = DEFAULT_UPLOAD_REUSE_SECONDS):
        self.db = journal.db
        self.reuse_seconds = reuse_seconds

    def get(self, base_url: str, sha256: str) -> UploadedFile | None:
        row = self.db.execute(
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
        self.db.execute(
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


class BatchRunner:
    """Runs the jobs of a journal with at most ``limit`` tasks in flight."""

    def __init__(
        self,
        client: AsyncClient,
        journal: Journal,
        jobs: list[Job],
        *,
        base_dir: Path,
        limit: int,
        out_dir: Path | None,
        timeout: float,
        resubmit_unknown: bool,
        progress: Progress | None,
    ) -> None:
        self.client = client
        self.journal = journal
        self.jobs = jobs
        self.base_dir = base_dir
        self.limit = limit
        self.out_dir = out_dir
        self.timeout = timeout
        self.resubmit_unknown = resubmit_unknown
        self.progress = progress
        self._bar = progress.add_task("batch", total=len(jobs)) if progress else None

    async def run(self) -> None:
        slots = anyio.Semaphore(self.limit)
        async with anyio.create_task_group() as group:
            for job in self.jobs:
                group.start_soon(self._guarded, job, slots)

    def _advance(self) -> None:
        if self.progress is not None and self._bar is not None:
            self.progress.advance(self._bar)

    def _set(self, job: Job, state: str, **changes: Any) -> None:
        job.state = state
        for name, value in changes.items():
            setattr(job, name, value)
        self.journal.save(job)

    async def _guarded(self, job: Job, slots: anyio.Semaphore) -> None:
        if job.state == UNKNOWN and self.resubmit_unknown:
            self._set(job, PENDING, idempotency_key=None, error=None)
        if job.state in FINAL:
            self._advance()
            return
        async with slots:
            try:
                await self._run(job)
            except StillRunning:
                pass  # stays ``submitted``: the next run queries it again
            except ReelgateError as error:
                if job.state in (PENDING, SUBMITTING) and isinstance(error, ResponseLost):
                    self._set(job, UNKNOWN, error=str(error))
                elif job.state in (PENDING, SUBMITTING):
                    self._set(job, FAILED, error=f"{type(error).__name__}: {error}")
                else:
                    job.error = f"{type(error).__name__}: {error}"
                    self.journal.save(job)
        if job.state in FINAL:
            self._advance()

    async def _run(self, job: Job) -> None:
        if job.state == SUBMITTING and not self.client.idempotency:
            self._set(
                job,
                UNKNOWN,
                error="the submit's answer was lost and this server cannot "
                "de-duplicate it; check the account's tasks, then rerun with "
                "--resubmit-unknown if it does not exist",
            )
            return
        if job.state in (PENDING, SUBMITTING):
            await self._submit(job)
        if job.state == SUBMITTED:
            assert job.task_id is not None
            task = self.client.task(job.task_id)
            info = await task.wait(self.timeout, raise_on_failure=False)
            if info.status is TaskStatus.SUCCESS:
                self._set(job, SUCCEEDED, status=info.status.value, error=None)
            else:
                self._set(
                    job,
                    FAILED,
                    status=info.status.value,
                    error=f"[{info.error_code}] {info.error_message}".strip(),
                )
        if job.state == SUCCEEDED:
            files: list[str] = []
            if self.out_dir is not None:
                assert job.task_id is not None
                info = await self.client.query(job.task_id)
                files = [str(p) for p in await self.client.download(info, self.out_dir)]
            self._set(job, DONE, files=files)

    async def _submit(self, job: Job) -> None:
        payload = resolve_media(job, self.base_dir)
        key = job.idempotency_key or (uuid.uuid4().hex if self.client.idempotency else None)
        self._set(job, SUBMITTING, idempotency_key=key)
        started = time.monotonic()
        while True:
            try:
                task: AsyncTask = await self.client.run(job.model, payload, idempotency_key=key)
                break
            except RetryableError as error:
                # The server refused for capacity; no task exists. Wait for a slot to free up.
                if not error.submit_safe or time.monotonic() - started > CAPACITY_PATIENCE:
                    raise
                await anyio.sleep(error.retry_after or 5.0)
        self._set(job, SUBMITTED, task_id=task.id, status=task.status.value)


def summary(jobs: list[Job], as_json: bool) -> int:
    if as_json:
        print_json({"jobs": [j.to_json() for j in jobs]})
    else:
        table = Table(title=f"{len(jobs)} jobs")
        for column in ("line", "job", "model", "state", "taskId", "status / error", "files"):
            table.add_column(column)
        for job in jobs:
            state = "running" if job.state == SUBMITTED else job.state
            table.add_row(
                str(job.line),
                job.job_id,
                job.model,
                state,
                job.task_id or "",
                job.error or job.status or "",
                "\n".join(job.files or []),
            )
        out.print(table)
    if any(j.state in (FAILED, UNKNOWN) for j in jobs):
        return EXIT_FAILED
    if any(j.state not in FINAL for j in jobs):
        return EXIT_RUNNING
    return EXIT_DONE


def batch(
    jobs_file: Annotated[
        Path,
        typer.Argument(
            help="JSONL: one {model, payload, id?} per line.", exists=True, dir_okay=False
        ),
    ],
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency", "-c", min=1, help="Most tasks in flight (capped by the key's limit)."
        ),
    ] = 4,
    out_dir: Annotated[
        Path, typer.Option("-o", "--output", help="Directory for the outputs.")
    ] = Path("."),
    download: Annotated[
        bool, typer.Option("--download/--no-download", help="Save each job's outputs.")
    ] = True,
    journal_path: Annotated[
        Path | None,
        typer.Option(
            "--journal", help="Journal file [default: JOBS.jsonl.journal].", show_default=False
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Longest wait per task, seconds.")
    ] = 1800.0,
    resubmit_unknown: Annotated[
        bool,
        typer.Option(
            "--resubmit-unknown",
            help="Submit again jobs whose earlier submit has an unknown outcome.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="Server URL.", show_default=False)
    ] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="API key.", show_default=False)
    ] = None,
) -> None:
    """Run every job of a JSONL file; run it again to resume after an interruption."""
    journal: Journal | None = None
    jobs: list[Job] = []
    try:
        jobs = read_jobs(jobs_file)
        journal = Journal(
            journal_path or jobs_file.with_name(jobs_file.name + ".journal"),
            resolve_base_url(base_url),
        )
        journal.load(jobs)
        client = AsyncClient(base_url, api_key, upload_cache=JournalUploadCache(journal))
        asyncio.run(
            _run(
                client,
                journal,
                jobs,
                jobs_file.parent,
                concurrency,
                out_dir if download else None,
                timeout,
                resubmit_unknown,
                as_json,
            )
        )
    except ReelgateError as error:
        if journal is not None:
            journal.close()
        fail(error, as_json)
    except KeyboardInterrupt:
        err.print("interrupted; run the same command again to resume")
        if journal is not None:
            journal.close()
        raise typer.Exit(EXIT_INTERRUPTED) from None
    journal.close()
    raise typer.Exit(summary(jobs, as_json))


async def _run(
    client: AsyncClient,
    journal: Journal,
    jobs: list[Job],
    base_dir: Path,
    concurrency: int,
    out_dir: Path | None,
    timeout: float,
    resubmit_unknown: bool,
    as_json: bool,
) -> None:
    async with client:
        limit = concurrency
        try:
            capacity = (await client.queue_status()).concurrent_limit
        except ReelgateError:
            capacity = None  # not every key may read its queue status
        if capacity:
            limit = max(1, min(concurrency, capacity))
        if not as_json:
            err.print(
                f"{len(jobs)} jobs, {sum(j.state in FINAL for j in jobs)} already finished; "
                f"up to {limit} at a time (journal: {journal.path})"
            )
        progress = None
        if not as_json and err.is_terminal:
            progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            )
        runner = BatchRunner(
            client,
            journal,
            jobs,
            base_dir=base_dir,
            limit=limit,
            out_dir=out_dir,
            timeout=timeout,
            resubmit_unknown=resubmit_unknown,
            progress=progress,
        )
        if progress is None:
            await runner.run()
        else:
            with progress:
                await runner.run()
