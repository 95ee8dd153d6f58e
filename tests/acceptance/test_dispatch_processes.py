"""``reelgate serve`` with its embedded worker polling only every 30 s: a submit over HTTP still
starts at once, on SQLite (the local signal) and on PostgreSQL (``LISTEN``/``NOTIFY``)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.acceptance.serving import start_serve
from tests.conftest import free_port

I2V = "/openapi/v2/kling-video-o3-std/image-to-video"
#: Far below the poll: only a wake-up explains a start this early.
PROMPTLY = 10.0


def test_a_submit_starts_at_once_on_an_idle_embedded_worker(tmp_path: Path, db_url: str) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")},
        "REELGATE_DATA_DIR": str(tmp_path / "data"),
        "REELGATE_DATABASE_URL": db_url,
        "REELGATE_ALLOW_PRIVATE_NETWORKS": "true",
        "REELGATE_WORKER__POLL_SECONDS": "30",
    }
    server, url = start_serve(env, "--workers", "1", start_new_session=True)
    try:
        key = (tmp_path / "data" / "api-key.txt").read_text().strip()
        http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        # The image is on a closed port: each task fails as soon as the worker claims it.
        body = {"prompt": "p", "firstImageUrl": f"http://127.0.0.1:{free_port()}/a.png"}

        def status(task_id: str) -> Any:
            return http.post("/openapi/v2/query", json={"taskId": task_id}).json()["status"]

        def started_within(task_id: str, seconds: float) -> bool:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                if status(task_id) != "QUEUED":
                    return True
                time.sleep(0.05)
            return False

        # The first task is claimed when the worker starts; after it the worker is idle.
        first = http.post(I2V, json=body).json()["taskId"]
        assert started_within(first, 60)
        deadline = time.monotonic() + 60
        while status(first) == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)

        second = http.post(I2V, json=body).json()["taskId"]
        assert started_within(second, PROMPTLY)
        http.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
