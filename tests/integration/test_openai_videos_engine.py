"""The ``openai-videos`` engine between two real reelgates: B serves ``/v1/videos`` with the
preview engine, A forwards its tasks there. Jobs are counted on B to prove none runs twice."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.config import OpenAIVideosSettings
from reelgate.core.status import TaskStatus
from reelgate.service import Service
from tests.integration.gateway import CuttingProxy, Node, node, query, wait_for, wait_until_done
from tests.integration.test_upstream import PRO, body, png, seconds_of, upload
from tests.integration.test_v1_videos_sdk import measured


def forwarding(url: str, api_key: str, **overrides: Any) -> OpenAIVideosSettings:
    """A's engine settings: B's Videos API, its pro model for image-to-video, quick polls."""
    values: dict[str, Any] = {
        "url": f"{url}/v1",
        "api_key": api_key,
        "models": {"image-to-video": "sora-2-pro"},
        "long_side": 256,
        "max_poll_seconds": 0.3,
        "max_wait_seconds": 60.0,
        "timeout_seconds": 10.0,
    }
    values.update(overrides)
    return OpenAIVideosSettings(**values)


@pytest.fixture
def b(tmp_path: Path) -> Iterator[Node]:
    """The server at the other end; its worker starts only when a test says so."""
    with node(tmp_path / "b") as cloud:
        yield cloud


def front(tmp_path: Path, url: str, api_key: str, **overrides: Any) -> Node:
    a = Node(
        tmp_path / "a", engine="openai-videos", openai_videos=forwarding(url, api_key, **overrides)
    )
    a.start_http()
    return a


@pytest.fixture
def a(tmp_path: Path, b: Node) -> Iterator[Node]:
    gateway = front(tmp_path, b.url, b.new_key())
    try:
        yield gateway
    finally:
        gateway.close()


def submitted_on_a(a: Node) -> dict[str, Any]:
    """A's only task's checkpoint, once its job exists on B."""
    checkpoint: dict[str, Any] = wait_for(
        lambda: (
            (a.tasks()[0].checkpoint or {}).get("stage") == "submitted" and a.tasks()[0].checkpoint
        ),
        what="the job id in A's checkpoint",
    )
    return checkpoint


def test_a_runninghub_task_runs_on_b_and_a_serves_the_output(a: Node, b: Node) -> None:
    b.start_worker()
    a.start_worker()
    with a.client(a.new_key()) as http:
        task_id = http.post(PRO, json=body(upload(http, png(400, 300)))).json()["taskId"]
        done = wait_until_done(http, task_id)
        assert done["status"] == "SUCCESS", done
        (job,) = b.tasks()
        # B ran the model A's setting names, at the first frame's aspect on 256 px, 3 s, silent.
        assert job.model == "kling-video-o3-pro/image-to-video" and job.status == "SUCCESS"
        assert (job.params["size"], job.params["duration"], job.params["sound"]) == (
            "256x192",
            3,
            False,
        )
        assert a.tasks()[0].checkpoint["remoteId"] == f"video_{job.id}"  # type: ignore[index]
        shutil.rmtree(b.runtime.settings.resolved_storage_dir() / "results")  # B's copy is gone
        (result,) = done["results"]
        assert result["url"].startswith(a.url) and result["outputType"] == "mp4"
        mp4 = httpx.get(result["url"]).content
        assert measured(mp4)[:2] == (256, 192) and abs(seconds_of(mp4) - 3) < 0.1
        # A charges its own catalogue price for the request (3 s, no sound, pro).
        assert done["usage"]["consumeCoins"] == "207"
        # And A serves it through its own Videos API as well.
        still = http.get(f"/v1/videos/video_{task_id}/content", params={"variant": "thumbnail"})
        assert still.status_code == 200 and still.headers["content-type"] == "image/webp"


def test_as_worker_killed_mid_job_and_restarted_finishes_with_exactly_one_job_on_b(
    tmp_path: Path, b: Node
) -> None:
    key_on_b = b.new_key()
    with node(
        tmp_path / "a", engine="openai-videos", openai_videos=forwarding(b.url, key_on_b)
    ) as a:
        env = {
            **os.environ,
            "REELGATE_DATA_DIR": str(tmp_path / "a"),
            "REELGATE_DATABASE_URL": a.runtime.settings.resolved_database_url(),
            "REELGATE_ENGINE": "openai-videos",
            "REELGATE_OPENAI_VIDEOS__URL": f"{b.url}/v1",
            "REELGATE_OPENAI_VIDEOS__API_KEY": key_on_b,
            "REELGATE_OPENAI_VIDEOS__LONG_SIDE": "256",
            "REELGATE_OPENAI_VIDEOS__MAX_POLL_SECONDS": "0.3",
            "REELGATE_ALLOW_PRIVATE_NETWORKS": "true",
            "REELGATE_WORKER__LEASE_SECONDS": "2",
            "REELGATE_WORKER__HEARTBEAT_SECONDS": "0.3",
            "REELGATE_WORKER__SWEEP_SECONDS": "0.5",
            "REELGATE_WORKER__POLL_SECONDS": "0.1",
        }

        def worker() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [sys.executable, "-m", "reelgate", "worker"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        first = worker()
        second = None
        try:
            with a.client(a.new_key()) as http:
                task_id = http.post(PRO, json=body(upload(http, png()))).json()["taskId"]
                # B has no worker yet: the job waits there while A's worker polls it.
                submitted_on_a(a)
                assert b.task_count() == 1
                first.send_signal(signal.SIGKILL)
                first.wait(10)
                assert a.tasks()[0].status == TaskStatus.RUNNING  # its lease is still live
                second = worker()
                b.start_worker()
                done = wait_until_done(http, task_id, timeout=120)
            assert done["status"] == "SUCCESS", done
            assert b.task_count() == 1  # exactly one job on B
            (task,) = a.tasks()
            assert task.attempts == 2  # claimed again after the lease ran out
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.terminate()
                    proc.wait(30)


def test_cancel_on_a_cancels_the_job_on_b(a: Node, b: Node) -> None:
    a.start_worker()  # B has no worker: its job waits, queued
    with a.client(a.new_key()) as http:
        task_id = http.post(PRO, json=body(upload(http, png()))).json()["taskId"]
        submitted_on_a(a)
        assert http.post("/task/openapi/cancel", json={"taskId": task_id}).json()["code"] == 0
        assert query(http, task_id)["status"] == "CANCEL"
    wait_for(lambda: b.tasks()[0].status == TaskStatus.CANCEL, what="B's job to be cancelled")
    wait_for(lambda: a.tasks()[0].remote_key is None, what="A's slot to be freed")


def test_a_cancel_while_no_worker_holds_the_task_is_passed_on_by_the_next_worker(
    a: Node, b: Node
) -> None:
    a.start_worker()
    with a.client(a.new_key()) as http:
        task_id = http.post(PRO, json=body(upload(http, png()))).json()["taskId"]
        submitted_on_a(a)
        a.stop_worker()  # handed back: QUEUED on A, still alive on B
        assert query(http, task_id)["status"] == "QUEUED"
        assert http.post("/task/openapi/cancel", json={"taskId": task_id}).json()["code"] == 0
    assert b.tasks()[0].status == "QUEUED"
    a.start_worker()  # any worker with the engine passes the cancel on
    wait_for(lambda: b.tasks()[0].status == "CANCEL", what="B's job to be cancelled")


def test_a_failed_job_on_b_fails_as_task_with_bs_code_and_message(tmp_path: Path, b: Node) -> None:
    key_on_b = b.new_key()
    # B's key fails every task with 1013, as a real failure would.
    Service(b.runtime).set_key_faults(key_on_b, {"fail_rate": 1.0, "fail_code": "1013"})
    a = front(tmp_path, b.url, key_on_b)
    try:
        b.start_worker()
        a.start_worker()
        with a.client(a.new_key()) as http:
            done = wait_until_done(
                http, http.post(PRO, json=body(upload(http, png()))).json()["taskId"]
            )
        (job,) = b.tasks()
        assert job.status == "FAILED" and job.error_code == "1013"
        assert (done["status"], done["errorCode"], done["errorMessage"]) == (
            "FAILED",
            "1013",
            job.error_message,
        )
        assert done["usage"]["consumeCoins"] == "0"  # refunded on A
    finally:
        a.close()


def test_bs_refusals_reach_as_user_as_the_contracts_codes(tmp_path: Path, b: Node) -> None:
    poor = b.new_key(coins=0)
    a = front(tmp_path, b.url, b.new_key(), size="4000x4000")  # B takes sides up to 3840
    broke = Node(tmp_path / "a2", engine="openai-videos", openai_videos=forwarding(b.url, poor))
    broke.start_http()
    try:
        a.start_worker()
        broke.start_worker()
        with a.client(a.new_key()) as http:
            too_big = wait_until_done(
                http, http.post(PRO, json=body(upload(http, png()))).json()["taskId"]
            )
        with broke.client(broke.new_key()) as http:
            no_coins = wait_until_done(
                http, http.post(PRO, json=body(upload(http, png()))).json()["taskId"]
            )
        assert b.task_count() == 0  # B refused both creates
        assert (too_big["status"], too_big["errorCode"]) == ("FAILED", "1007")
        assert "4000x4000" in too_big["errorMessage"]
        assert (no_coins["status"], no_coins["errorCode"]) == ("FAILED", "416")
    finally:
        a.close()
        broke.close()


@pytest.mark.parametrize("idempotent", [True, False])
def test_a_create_whose_answer_was_lost_never_makes_a_second_job(
    tmp_path: Path, b: Node, idempotent: bool
) -> None:
    proxy = CuttingProxy(b.port, submit_line=b"POST /v1/videos ")
    a = front(tmp_path, proxy.url, b.new_key(), idempotent=idempotent)
    try:
        b.start_worker()
        a.start_worker()
        proxy.cut_next_submit()
        with a.client(a.new_key()) as http:
            done = wait_until_done(
                http, http.post(PRO, json=body(upload(http, png()))).json()["taskId"]
            )
        assert proxy.cuts == 1
        assert b.task_count() == 1  # the job B committed, and no other
        if idempotent:  # sent again with its Idempotency-Key: B answered with the job it had
            assert done["status"] == "SUCCESS", done
        else:  # not asked again: the task fails rather than run twice
            assert (done["status"], done["errorCode"]) == ("FAILED", "1015")
            assert "was lost" in done["errorMessage"]
    finally:
        a.close()
        proxy.close()


def test_engines_shows_the_server_and_its_slots(tmp_path: Path, b: Node) -> None:
    key_on_b = b.new_key()
    env = {
        **os.environ,
        "REELGATE_DATA_DIR": str(tmp_path / "cli"),
        "REELGATE_ROUTES": json.dumps({"kling-video-o3-pro/*": "openai-videos"}),
        "REELGATE_OPENAI_VIDEOS__URL": f"{b.url}/v1",
        "REELGATE_OPENAI_VIDEOS__API_KEY": key_on_b,
        "REELGATE_OPENAI_VIDEOS__CONCURRENCY": "2",
    }

    def engines() -> dict[str, Any]:
        listing = subprocess.run(
            [sys.executable, "-m", "reelgate", "engines", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert listing.returncode == 0, listing.stderr
        assert key_on_b not in listing.stdout
        rows: dict[str, dict[str, Any]] = {row["name"]: row for row in json.loads(listing.stdout)}
        return rows["openai-videos"]

    row = engines()
    assert row["ready"] and row["url"] == f"{b.url}/v1"
    assert row["routed"] == ["kling-video-o3-pro/image-to-video", "kling-video-o3-pro/video-edit"]
    (slot,) = row["keys"]
    assert (slot["concurrency"], slot["inUse"]) == (2, 0)
    b.stop_http()
    down = engines()
    assert not down["ready"] and "does not answer" in down["detail"]


def test_a_job_the_server_forgot_is_created_again(tmp_path: Path, b: Node) -> None:
    key_on_b = b.new_key()
    a = front(tmp_path, b.url, key_on_b)
    try:
        a.start_worker()  # B has no worker yet: the job waits there
        with a.client(a.new_key()) as http:
            task_id = http.post(PRO, json=body(upload(http, png()))).json()["taskId"]
            first_job = submitted_on_a(a)["remoteId"]
            # B loses the job, as SGLang-Diffusion does when it restarts (its jobs are in memory).
            with b.client(key_on_b) as direct:
                assert direct.delete(f"/v1/videos/{first_job}").json()["deleted"]
            b.start_worker()
            done = wait_until_done(http, task_id)
        assert done["status"] == "SUCCESS", done
        checkpoint = a.tasks()[0].checkpoint or {}
        assert checkpoint["recreated"] == 1 and checkpoint["remoteId"] != first_job
        assert [t.status for t in b.tasks()] == ["CANCEL", "SUCCESS"]
    finally:
        a.close()
