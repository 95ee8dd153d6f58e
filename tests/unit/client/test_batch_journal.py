"""``reelgate.client.batch`` without a server: the journal, and the runner against a fake cloud.

The fake speaks RunningHub's wire format through an ``httpx.MockTransport`` and counts what it
was asked, so each test can say how many tasks were created (paid for) and how many uploads made.
"""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from reelgate.client import (
    RUNNINGHUB_AI,
    AsyncClient,
    Batch,
    BatchEvent,
    BatchJobChanged,
    BatchJournal,
    BatchResult,
    BatchStarted,
    JobState,
    PollPolicy,
    RequestValidationError,
    RetryPolicy,
    UploadedFile,
)
from reelgate.client.batch import make_jobs, read_jobs

REELGATE = "http://reelgate.test"
KEY = "rh-secret-0123456789abcdef"
I2V = "kling-video-o3-std/image-to-video"
FAST = PollPolicy(queued_initial=0.01, queued_max=0.02, running_initial=0.01, running_max=0.02)
QUICK_RETRY = RetryPolicy(max_attempts=3, backoff=0.01, max_backoff=0.02)


def job(prompt: str, image: str = "https://example.com/a.png", **extra: Any) -> dict[str, Any]:
    return {
        "model": I2V,
        "payload": {"prompt": prompt, "firstImageUrl": image, "duration": 3},
        **extra,
    }


def write_jobs(folder: Path, *items: dict[str, Any]) -> Path:
    path = folder / "jobs.jsonl"
    path.write_text("# one job per line\n\n" + "".join(json.dumps(i) + "\n" for i in items))
    return path


class FakeCloud:
    """A RunningHub (or reelgate, which honours ``Idempotency-Key``) that records every call."""

    def __init__(self, *, limit: int = 2, queries_until_done: int = 1) -> None:
        self.limit = limit
        self.queries_until_done = queries_until_done
        #: Prompts whose task fails, and prompts the server refuses outright.
        self.failing: set[str] = set()
        self.refused: set[str] = set()
        #: How many of the next submits create a task but lose the answer.
        self.lose_answers = 0
        self.tasks: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, str] = {}
        self.submits = 0
        self.uploads = 0
        self.most_in_flight = 0

    def in_flight(self) -> int:
        return sum(t["status"] in ("QUEUED", "RUNNING") for t in self.tasks.values())

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.url.host == "files.test":
            return httpx.Response(200, content=b"video of " + path.encode())
        if path == "/openapi/v2/queue/status":
            return envelope({"concurrentLimit": self.limit, "runningCount": self.in_flight()})
        if path == "/openapi/v2/media/upload/binary":
            self.uploads += 1
            url = f"https://files.test/input/{self.uploads}.png"
            return envelope({"type": "image", "download_url": url, "fileName": "a.png"})
        if path == "/openapi/v2/query":
            return self.query(json.loads(request.content)["taskId"])
        return self.submit(request)

    def submit(self, request: httpx.Request) -> httpx.Response:
        self.submits += 1
        body = json.loads(request.content)
        if body["prompt"] in self.refused:
            return httpx.Response(200, json=answer("", "FAILED", "1007", "prompt refused"))
        key = request.headers.get("Idempotency-Key")
        if key and key in self.keys:
            task_id = self.keys[key]
        else:
            task_id = str(2009191190196789000 + len(self.tasks))
            self.tasks[task_id] = {"status": "QUEUED", "queries": 0, "prompt": body["prompt"]}
            if key:
                self.keys[key] = task_id
        self.most_in_flight = max(self.most_in_flight, self.in_flight())
        if self.lose_answers:
            self.lose_answers -= 1
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return httpx.Response(200, json=answer(task_id, self.tasks[task_id]["status"]))

    def query(self, task_id: str) -> httpx.Response:
        task = self.tasks[task_id]
        task["queries"] += 1
        if task["queries"] >= self.queries_until_done:
            task["status"] = "FAILED" if task["prompt"] in self.failing else "SUCCESS"
        if task["status"] == "FAILED":
            return httpx.Response(200, json=answer(task_id, "FAILED", "2001", "render failed"))
        results = (
            [{"url": f"https://files.test/out/{task_id}.mp4", "outputType": "mp4"}]
            if task["status"] == "SUCCESS"
            else None
        )
        return httpx.Response(200, json=answer(task_id, task["status"], results=results))


def envelope(data: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"code": 0, "msg": "success", "data": data})


def answer(
    task_id: str, status: str, code: str = "", message: str = "", results: Any = None
) -> dict[str, Any]:
    return {
        "taskId": task_id,
        "status": status,
        "errorCode": code,
        "errorMessage": message,
        "results": results,
        "clientId": "",
        "promptTips": "",
    }


def run(batch: Batch, cloud: FakeCloud, **options: Any) -> tuple[BatchResult, list[BatchEvent]]:
    """Run the batch against the fake cloud; return the result and every event."""
    events: list[BatchEvent] = []

    async def go() -> BatchResult:
        async with AsyncClient(
            batch.base_url,
            KEY,
            transport=httpx.MockTransport(cloud),
            poll=FAST,
            retry=QUICK_RETRY,
            upload_cache=batch.uploads,
        ) as client:
            return await batch.arun(client, on_event=events.append, **options)

    return anyio.run(go), events


def states(result: BatchResult) -> list[str]:
    return [j.state.value for j in result.jobs]


# -- reading jobs -------------------------------------------------------------------------------


def test_jobs_have_stable_ids_and_a_repeated_request_is_a_second_job(tmp_path: Path) -> None:
    path = write_jobs(tmp_path, job("one"), job("two", id="named"), job("one"))
    jobs = read_jobs(path)
    assert [j.line for j in jobs] == [3, 4, 5]  # the comment and the blank line are skipped
    assert jobs[1].job_id == "named"
    assert jobs[2].job_id == jobs[0].job_id + "#2"
    assert [j.job_id for j in read_jobs(path)] == [j.job_id for j in jobs]
    assert [j.job_id for j in make_jobs([job("one"), job("two", id="named")])] == [
        jobs[0].job_id,
        "named",
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "jobs.jsonl:1: not valid JSON"),
        ('{"model": "m"}', "jobs.jsonl:1: expected"),
        ('["model", {}]', "jobs.jsonl:1: expected"),
    ],
)
def test_a_broken_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(RequestValidationError, match=message):
        read_jobs(path)


def test_the_same_id_twice_is_refused() -> None:
    with pytest.raises(RequestValidationError, match="duplicate job id 'x'"):
        make_jobs([job("one", id="x"), job("two", id="x")], source="list")


# -- the journal --------------------------------------------------------------------------------


def test_the_journal_keeps_each_state_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "jobs.journal"
    with BatchJournal(path, REELGATE) as journal:
        jobs = journal.load(make_jobs([job(str(n)) for n in range(len(JobState))]))
        assert all(j.state is JobState.PENDING for j in jobs)
        for one, state in zip(jobs, JobState, strict=True):
            one.state, one.task_id, one.idempotency_key = state, f"task-{state}", f"key-{state}"
            one.files = ["out/a.mp4"] if state is JobState.DONE else None
            one.error = "boom" if state is JobState.FAILED else None
            journal.save(one)

    with BatchJournal(path, REELGATE + "/") as journal:  # the same server, spelled differently
        again = journal.load(make_jobs([job(str(n)) for n in range(len(JobState))]))
    assert [j.state for j in again] == list(JobState)
    assert [j.task_id for j in again] == [f"task-{s}" for s in JobState]
    assert [j.idempotency_key for j in again] == [f"key-{s}" for s in JobState]
    assert again[list(JobState).index(JobState.DONE)].files == ["out/a.mp4"]
    assert again[list(JobState).index(JobState.FAILED)].error == "boom"


def test_loading_the_same_jobs_again_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "jobs.journal"
    with BatchJournal(path, REELGATE) as journal:
        [first] = journal.load(make_jobs([job("one")]))
        first.state = JobState.SUBMITTED
        journal.save(first)
        [second] = journal.load(make_jobs([job("one")]))
        assert second.state is JobState.SUBMITTED
        journal.load(make_jobs([job("one"), job("two")]))
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT state FROM jobs ORDER BY line").fetchall()
    assert rows == [("submitted",), ("pending",)]


def test_a_journal_belongs_to_one_server(tmp_path: Path) -> None:
    path = tmp_path / "jobs.journal"
    BatchJournal(path, REELGATE).close()
    with pytest.raises(RequestValidationError, match=re.escape(f"belongs to {REELGATE}")):
        BatchJournal(path, RUNNINGHUB_AI)


@pytest.mark.parametrize("where", ["folder", "missing folder", "not a journal"])
def test_a_path_that_cannot_hold_a_journal_is_the_callers_error(tmp_path: Path, where: str) -> None:
    path = {
        "folder": tmp_path,
        "missing folder": tmp_path / "no" / "such" / "jobs.journal",
        "not a journal": tmp_path / "notes.txt",
    }[where]
    if where == "not a journal":
        path.write_text("these are notes, not a database\n" * 100)
    with pytest.raises(RequestValidationError, match=f"cannot use {re.escape(str(path))} as a"):
        BatchJournal(path, REELGATE)


def test_the_journal_remembers_uploads_for_a_day(tmp_path: Path) -> None:
    uploaded = UploadedFile(
        download_url="https://files.test/a.png",
        type="image",
        file_name="a.png",
        size=3,
        sha256="ab",
    )
    with BatchJournal(tmp_path / "jobs.journal", REELGATE) as journal:
        journal.uploads.put(REELGATE, uploaded)
    with BatchJournal(tmp_path / "jobs.journal", REELGATE) as journal:
        kept = journal.uploads.get(REELGATE, "ab")
        assert kept is not None and kept.download_url == uploaded.download_url
        assert journal.uploads.get(RUNNINGHUB_AI, "ab") is None
        journal.uploads.reuse_seconds = 0
        assert journal.uploads.get(REELGATE, "ab") is None


# -- running ------------------------------------------------------------------------------------


def test_a_batch_runs_within_capacity_and_a_rerun_does_nothing(tmp_path: Path) -> None:
    cloud = FakeCloud(limit=2, queries_until_done=3)
    path = write_jobs(tmp_path, *(job(f"job {n}") for n in range(5)))
    with Batch(path, base_url=REELGATE) as batch:
        result, events = run(batch, cloud, concurrency=8, output=tmp_path / "out")
    assert result.ok and states(result) == ["done"] * 5 and result.limit == 2
    assert cloud.submits == 5 and len(cloud.tasks) == 5 and cloud.most_in_flight <= 2
    for one in result.jobs:
        assert one.task_id in cloud.tasks
        assert one.files == [str(tmp_path / "out" / f"{one.task_id}_1.mp4")]
        assert Path(one.files[0]).read_bytes() == f"video of /out/{one.task_id}.mp4".encode()
    assert events[0] == BatchStarted(
        total=5, finished=0, limit=2, journal=tmp_path / "jobs.jsonl.journal"
    )
    changes = [e for e in events if isinstance(e, BatchJobChanged)]
    first = result.jobs[0]
    assert [(e.previous, e.state) for e in changes if e.job is first] == [
        (JobState.PENDING, JobState.SUBMITTING),
        (JobState.SUBMITTING, JobState.SUBMITTED),
        (JobState.SUBMITTED, JobState.SUCCEEDED),
        (JobState.SUCCEEDED, JobState.DONE),
    ]
    assert sum(e.finished for e in changes) == 5

    queries = sum(t["queries"] for t in cloud.tasks.values())
    with Batch(path, base_url=REELGATE) as batch:
        again, events = run(batch, cloud, output=tmp_path / "out")
    assert [j.to_json() for j in again.jobs] == [j.to_json() for j in result.jobs]
    assert events == [
        BatchStarted(total=5, finished=5, limit=2, journal=tmp_path / "jobs.jsonl.journal")
    ]
    assert cloud.submits == 5 and sum(t["queries"] for t in cloud.tasks.values()) == queries


def test_a_failed_task_and_a_refused_submit_fail_alone(tmp_path: Path) -> None:
    cloud = FakeCloud()
    cloud.failing.add("doomed")
    cloud.refused.add("refused")
    with Batch(
        [job("fine"), job("doomed"), job("refused")], journal=tmp_path / "j", base_url=REELGATE
    ) as batch:
        result, _ = run(batch, cloud)
    assert states(result) == ["done", "failed", "failed"]
    assert result.jobs[0].files == []  # no output folder: nothing saved
    assert result.jobs[1].status == "FAILED" and result.jobs[1].error == "[2001] render failed"
    assert result.jobs[2].task_id is None and "InvalidParameters" in (result.jobs[2].error or "")
    assert [j.job_id for j in result.failed] == [j.job_id for j in result.jobs[1:]]
    assert not result.ok and result.unfinished == []


def test_a_wait_that_runs_out_leaves_the_job_submitted_for_the_next_run(tmp_path: Path) -> None:
    cloud = FakeCloud(queries_until_done=10_000)
    with Batch([job("slow")], journal=tmp_path / "j", base_url=REELGATE) as batch:
        result, _ = run(batch, cloud, timeout=0.05)
        assert states(result) == ["submitted"] and result.unfinished == result.jobs
        cloud.queries_until_done = 1
        result, _ = run(batch, cloud)
    assert states(result) == ["done"] and cloud.submits == 1


def test_on_runninghub_a_lost_submit_is_unknown_until_resubmitted(tmp_path: Path) -> None:
    cloud = FakeCloud()
    cloud.lose_answers = 1
    with Batch([job("lost")], journal=tmp_path / "j", base_url=RUNNINGHUB_AI) as batch:
        result, _ = run(batch, cloud)
        assert states(result) == ["unknown"] and "lost" in (result.jobs[0].error or "")
        assert result.failed == result.jobs and len(cloud.tasks) == 1  # made, never answered

        result, _ = run(batch, cloud)  # left for a human: not sent again
        assert states(result) == ["unknown"] and cloud.submits == 1

        result, events = run(batch, cloud, resubmit_unknown=True)
    assert states(result) == ["done"] and cloud.submits == 2
    assert isinstance(events[0], BatchStarted) and events[0].finished == 0


def test_a_job_cut_off_while_submitting_is_recovered_by_its_key(tmp_path: Path) -> None:
    cloud = FakeCloud()
    with Batch([job("cut off")], journal=tmp_path / "j", base_url=REELGATE) as batch:
        [cut] = batch.jobs
        cut.state, cut.idempotency_key = JobState.SUBMITTING, "key-of-the-lost-run"
        batch.journal.save(cut)
        cloud.keys["key-of-the-lost-run"] = original = "2009191190196789249"
        cloud.tasks[original] = {"status": "QUEUED", "queries": 0, "prompt": "cut off"}
        result, _ = run(batch, cloud)
    assert states(result) == ["done"] and result.jobs[0].task_id == original
    assert len(cloud.tasks) == 1


def test_on_runninghub_a_job_cut_off_while_submitting_is_not_sent_again(tmp_path: Path) -> None:
    cloud = FakeCloud()
    with Batch([job("cut off")], journal=tmp_path / "j", base_url=RUNNINGHUB_AI) as batch:
        [cut] = batch.jobs
        cut.state = JobState.SUBMITTING
        batch.journal.save(cut)
        result, _ = run(batch, cloud)
    assert states(result) == ["unknown"] and cloud.submits == 0
    assert "--resubmit-unknown" in (result.jobs[0].error or "")


def test_local_media_is_relative_to_the_jobs_file_and_uploaded_once(tmp_path: Path) -> None:
    (tmp_path / "first.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 32)
    cloud = FakeCloud()
    path = write_jobs(tmp_path, job("one", "first.png"), job("two", "first.png"))
    with Batch(path, base_url=REELGATE) as batch:
        result, _ = run(batch, cloud)
    assert states(result) == ["done", "done"] and cloud.uploads == 1

    path.write_text(path.read_text() + json.dumps(job("three", "first.png")) + "\n")
    with Batch(
        path, base_url=REELGATE
    ) as batch:  # a new job, a new run: the upload is in the journal
        result, _ = run(batch, cloud)
    assert states(result) == ["done"] * 3 and cloud.uploads == 1


def test_listed_jobs_need_a_journal_and_a_client_for_its_server(tmp_path: Path) -> None:
    with pytest.raises(RequestValidationError, match="journal="):
        Batch([job("one")], base_url=REELGATE)
    with Batch([job("one")], journal=tmp_path / "j", base_url=REELGATE) as batch:
        other = AsyncClient(RUNNINGHUB_AI, KEY)
        with pytest.raises(RequestValidationError, match="the client is for"):
            anyio.run(batch.arun, other)
        anyio.run(other.aclose)
