"""The webhook outbox survives restarts: real ``reelgate serve`` and ``reelgate worker``
processes, killed while an event is still undelivered, and a real receiver that comes up later."""

from __future__ import annotations

import base64
import io
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from reelgate.samples import sample_image
from tests.acceptance.test_processes import Cluster
from tests.integration.webhook_receiver import Receiver

FAST_WEBHOOKS = {
    "REELGATE_WEBHOOKS__FIRST_RETRY_SECONDS": "0.1",
    "REELGATE_WEBHOOKS__MAX_RETRY_INTERVAL_SECONDS": "0.3",
    "REELGATE_WEBHOOKS__POLL_SECONDS": "0.05",
    "REELGATE_WEBHOOKS__TIMEOUT_SECONDS": "2",
}


@pytest.fixture
def cluster(tmp_path: Path, db_url: str) -> Iterator[Cluster]:
    c = Cluster(tmp_path / "data", db_url)
    c.env.update(FAST_WEBHOOKS)
    c.start_server()
    yield c
    c.stop()


def detail(cluster: Cluster, task_id: str) -> dict[str, Any]:
    answer = cluster.http.post("/task/openapi/getWebhookDetail", json={"taskId": task_id}).json()
    return dict(answer)


def wait_detail(cluster: Cluster, task_id: str, until: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = detail(cluster, task_id)
        if last["code"] == 0 and until(last["data"]):
            return dict(last["data"])
        time.sleep(0.1)
    raise AssertionError(f"webhook detail never matched: {last}")


def test_an_undelivered_event_survives_a_worker_and_an_api_restart(cluster: Cluster) -> None:
    receiver = Receiver()  # down: nothing listens on its port yet
    buffer = io.BytesIO()
    sample_image(320, 320).save(buffer, format="PNG")
    body = {
        "prompt": "a short pan",
        "firstImageUrl": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode(),
        "duration": 3,
        "sound": False,
        "webhookUrl": receiver.url,
    }
    submitted = cluster.http.post("/openapi/v2/kling-video-o3-std/image-to-video", json=body).json()
    task_id = str(submitted["taskId"])
    worker = cluster.spawn("worker")
    cluster.wait_for(task_id, lambda t: t["status"] == "SUCCESS")
    wait_detail(cluster, task_id, lambda d: d["retryCount"] >= 1)

    # Everything goes down hard: the worker and the API process.
    server = cluster.procs[0]
    for proc in (worker, server):
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    cluster.http.close()

    with receiver:
        cluster.start_server()
        cluster.spawn("worker")
        shown = wait_detail(cluster, task_id, lambda d: d["callbackStatus"] == "SUCCESS")
        time.sleep(1)
        assert len(receiver.requests) == 1
    (delivery,) = receiver.requests
    assert delivery.webhook_id == shown["id"]
    secret = cluster.http.get("/reelgate/v1/webhook-secret").json()["webhookSecret"]
    assert Webhook(secret).verify(delivery.body, delivery.headers)["taskId"] == task_id
