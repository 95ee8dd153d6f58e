"""``reelgate batch``: capacity, a durable journal, and resuming without ever paying twice."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from reelgate.cli.client_commands import register
from reelgate.client import BatchJournal, Client, JobState
from reelgate.client.batch import read_jobs
from tests.client.conftest import ROOT, Server

app = typer.Typer()
register(app)
I2V_STD = "kling-video-o3-std/image-to-video"


def write_jobs(folder: Path, prompts: list[str], image: str = "first.png") -> Path:
    jobs = folder / "jobs.jsonl"
    lines = ["# one job per line"] + [
        json.dumps(
            {
                "model": I2V_STD,
                "payload": {"prompt": p, "firstImageUrl": image, "duration": 3, "sound": False},
            }
        )
        for p in prompts
    ]
    jobs.write_text("\n".join(lines) + "\n")
    return jobs


def run_batch(server: Server, jobs: Path, *args: str) -> Any:
    env = {"REELGATE_BASE_URL": server.url, "REELGATE_API_KEY": server.api_key}
    result = CliRunner().invoke(app, ["batch", str(jobs), "--json", *args], env=env)
    return result.exit_code, json.loads(result.stdout)


def coins(server: Server) -> int:
    with Client(server.url, server.api_key) as rg:
        return int(rg.account().coins or 0)


def test_a_batch_runs_every_job_once_and_a_rerun_redoes_nothing(
    live: Server, media: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "first.png").write_bytes(media["first"].read_bytes())  # relative to the jobs file
    jobs = write_jobs(tmp_path, ["one", "two", "three", "two"])  # the same request twice: 2 jobs
    code, summary = run_batch(live, jobs, "--concurrency", "8", "-o", str(tmp_path / "out"))
    assert code == 0
    states = [j["state"] for j in summary["jobs"]]
    assert states == ["done"] * 4
    task_ids = {j["taskId"] for j in summary["jobs"]}
    assert len(task_ids) == 4 and live.task_count() == 4
    assert live.upload_count() == 1
    assert {Path(j["files"][0]).name for j in summary["jobs"]} == {f"{t}_1.mp4" for t in task_ids}

    code, again = run_batch(live, jobs)
    assert code == 0 and again == summary and live.task_count() == 4


def test_a_refused_job_fails_alone(live: Server, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(
        json.dumps(
            {
                "model": I2V_STD,
                "payload": {"prompt": "ok", "firstImageUrl": "https://example.com/a.png"},
            }
        )
        + "\n"
        + json.dumps(
            {
                "model": I2V_STD,
                "payload": {"prompt": "", "firstImageUrl": "https://example.com/a.png"},
            }
        )
        + "\n"
    )
    code, summary = run_batch(live, jobs, "--no-download")
    assert code == 1
    assert [j["state"] for j in summary["jobs"]] == ["failed", "failed"]  # the image is a 404
    assert "prompt" in summary["jobs"][1]["error"] and summary["jobs"][1]["taskId"] is None


def test_killed_half_way_and_resumed_gives_exactly_one_task_per_job(
    live: Server, media: dict[str, Path], tmp_path: Path
) -> None:
    prompts = [f"steady job {n}" for n in range(4)]
    jobs = write_jobs(tmp_path, prompts, str(media["first"]))
    journal = tmp_path / "jobs.jsonl.journal"
    before = coins(live)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REELGATE_BASE_URL": live.url,
        "REELGATE_API_KEY": live.api_key,
    }
    command = [
        sys.executable,
        "-m",
        "reelgate.cli.client_commands",
        "batch",
        str(jobs),
        "--concurrency",
        "2",
        "-o",
        str(tmp_path / "out"),
        "--json",
    ]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    submitted = 0
    while submitted < 2 and time.monotonic() < deadline:  # two tasks in flight, none finished
        time.sleep(0.05)
        with contextlib.suppress(sqlite3.OperationalError), closing(sqlite3.connect(journal)) as db:
            submitted = db.execute(
                "SELECT count(*) FROM jobs WHERE task_id IS NOT NULL"
            ).fetchone()[0]
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert submitted == 2 and live.task_count() == 2

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert [j["state"] for j in summary["jobs"]] == ["done"] * 4
    assert len({j["taskId"] for j in summary["jobs"]}) == 4
    assert live.task_count() == 4
    assert coins(live) == before - 4 * 3 * 52  # four tasks paid for, not five or six


def test_a_submit_cut_before_it_was_journaled_is_recovered_by_its_key(
    live_idle: Server, tmp_path: Path
) -> None:
    jobs = write_jobs(tmp_path, ["lost answer"], "https://example.com/a.png")
    [job] = read_jobs(jobs)
    # The previous run recorded its key, sent the submit (the server made the task) and died.
    with Client(live_idle.url, live_idle.api_key) as rg:
        original = rg.run(job.model, job.payload, idempotency_key="key-of-the-lost-run")
    journal = BatchJournal(tmp_path / "jobs.jsonl.journal", live_idle.url)
    journal.load([job])
    job.state, job.idempotency_key = JobState.SUBMITTING, "key-of-the-lost-run"
    journal.save(job)
    journal.close()

    code, summary = run_batch(live_idle, jobs, "--timeout", "0.2", "--no-download")
    assert code == 3  # still queued on a server without workers: resumable, not failed
    assert summary["jobs"][0]["taskId"] == original.id
    assert summary["jobs"][0]["state"] == "submitted"
    assert live_idle.task_count() == 1


def test_the_documented_python_batch_snippet_runs_and_resumes(
    live: Server, media: dict[str, Path], tmp_path: Path
) -> None:
    text = (ROOT / "docs" / "client.md").read_text()
    section = text.split("## Batches from Python\n", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "first.png").write_bytes(media["first"].read_bytes())
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REELGATE_BASE_URL": live.url,
        "REELGATE_API_KEY": live.api_key,
    }
    before = live.task_count()
    first = subprocess.run(
        [sys.executable, "-c", snippet],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().endswith("all done")
    assert "street submitting -> submitted" in first.stdout
    assert len(list((tmp_path / "out").glob("*_1.mp4"))) == 2
    assert live.task_count() == before + 2

    again = subprocess.run(
        [sys.executable, "-c", snippet],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert "->" not in again.stdout and again.stdout.strip().endswith("all done")
    assert live.task_count() == before + 2
