"""Real processes: ``reelgate serve`` and ``reelgate worker`` as subprocesses, killed and stopped."""

from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.samples import sample_image
from tests.conftest import free_port


class Cluster:
    """A server (API only) and any number of worker processes sharing one database."""

    def __init__(self, data_dir: Path, db_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "REELGATE_DATA_DIR": str(data_dir),
            "REELGATE_DATABASE_URL": db_url,
            "REELGATE_ALLOW_PRIVATE_NETWORKS": "true",
            "REELGATE_PREVIEW_LONG_SIDE": "480",
            "REELGATE_WORKER__LEASE_SECONDS": "2",
            "REELGATE_WORKER__HEARTBEAT_SECONDS": "0.3",
            "REELGATE_WORKER__SWEEP_SECONDS": "0.5",
            "REELGATE_WORKER__POLL_SECONDS": "0.1",
        }
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reelgate", *args],
            env={**self.env, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        return proc

    def start_server(self) -> None:
        self.spawn("serve", "--port", str(self.port), "--workers", "0")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        key_file = Path(self.env["REELGATE_DATA_DIR"]) / "api-key.txt"
        self.http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {key_file.read_text().strip()}"},
            timeout=30,
        )

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        if hasattr(self, "http"):
            self.http.close()

    def query(self, task_id: str) -> dict[str, Any]:
        return dict(self.http.post("/openapi/v2/query", json={"taskId": task_id}).json())

    def wait_for(self, task_id: str, condition: Any, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.query(task_id)
            if condition(task):
                return task
            time.sleep(0.1)
        raise AssertionError(f"task {task_id}: condition not met; last answer {task}")


@pytest.fixture
def cluster(tmp_path: Path, db_url: str) -> Iterator[Cluster]:
    c = Cluster(tmp_path / "data", db_url)
    c.start_server()
    yield c
    c.stop()


def long_task(cluster: Cluster) -> str:
    buffer = io.BytesIO()
    sample_image(640, 360).save(buffer, format="PNG")
    image = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    body = {"prompt": "a slow push-in", "firstImageUrl": image, "duration": 15, "sound": True}
    answer = cluster.http.post("/openapi/v2/kling-video-o3-pro/image-to-video", json=body).json()
    assert answer["errorCode"] == ""
    return str(answer["taskId"])


def running_with_progress(task: dict[str, Any]) -> bool:
    return bool(task["status"] == "RUNNING")


def test_a_killed_worker_task_is_requeued_and_finished_by_another(cluster: Cluster) -> None:
    task_id = long_task(cluster)
    doomed = cluster.spawn("worker")
    cluster.wait_for(task_id, running_with_progress)
    time.sleep(0.5)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    cluster.spawn("worker")
    task = cluster.wait_for(task_id, lambda t: t["status"] in ("SUCCESS", "FAILED"))
    assert task["status"] == "SUCCESS", task
    assert httpx.get(task["results"][0]["url"]).status_code == 200


def test_sigterm_hands_back_the_running_task(cluster: Cluster) -> None:
    task_id = long_task(cluster)
    leaving = cluster.spawn("worker", REELGATE_WORKER__SHUTDOWN_GRACE_SECONDS="0")
    cluster.wait_for(task_id, running_with_progress)
    leaving.send_signal(signal.SIGTERM)
    assert leaving.wait(30) == 0
    assert cluster.query(task_id)["status"] == "QUEUED"  # handed back at once, not after a lease
    cluster.spawn("worker")
    task = cluster.wait_for(task_id, lambda t: t["status"] in ("SUCCESS", "FAILED"))
    assert task["status"] == "SUCCESS", task


def test_sigterm_lets_the_running_task_finish_within_the_grace(cluster: Cluster) -> None:
    task_id = long_task(cluster)
    leaving = cluster.spawn("worker", REELGATE_WORKER__SHUTDOWN_GRACE_SECONDS="120")
    cluster.wait_for(task_id, running_with_progress)
    leaving.send_signal(signal.SIGTERM)
    assert leaving.wait(120) == 0
    assert cluster.query(task_id)["status"] == "SUCCESS"
