"""``reelgate serve --api-workers 2``: two API processes answer on one port from one database,
and go when the server goes."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import httpx
import psutil

from tests.acceptance.serving import start_serve

I2V = "/openapi/v2/kling-video-o3-std/image-to-video"
API_ONLY_TIMES_TWO = ("--workers", "0", "--api-workers", "2")


def test_two_api_processes_share_the_port_and_the_database(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")},
        "REELGATE_DATA_DIR": str(tmp_path / "data"),
    }
    server, url = start_serve(env, *API_ONLY_TIMES_TWO, start_new_session=True)
    try:
        key = (tmp_path / "data" / "api-key.txt").read_text().strip()
        headers = {"Authorization": f"Bearer {key}"}

        # Each request on a new connection: the kernel hands connections to either process.
        pids: set[str] = set()
        task_ids = []
        for _ in range(100):
            submitted = httpx.post(
                url + I2V, headers=headers, json={"prompt": "p", "firstImageUrl": "https://a/b.png"}
            ).json()
            task_ids.append(submitted["taskId"])
            metrics = httpx.get(url + "/metrics").text
            pids.update(re.findall(r'^reelgate_api_process\{pid="(\d+)"\} 1\.0$', metrics, re.M))
            if len(pids) == 2:
                break
        children = {str(p.pid) for p in psutil.Process(server.pid).children(recursive=True)}
        assert len(pids) == 2 and pids <= children
        # Whichever process answers, the tasks are the same database's.
        for task_id in task_ids:
            answer = httpx.post(
                url + "/openapi/v2/query", headers=headers, json={"taskId": task_id}
            )
            assert answer.json()["status"] == "QUEUED"

        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
        assert not any(psutil.pid_exists(int(pid)) for pid in pids)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
