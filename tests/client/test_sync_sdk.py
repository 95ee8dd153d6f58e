"""``Client`` against a real reelgate server over HTTP (uvicorn on a loopback port)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from reelgate.client import Client, PollPolicy, StillRunning, TaskStatus
from tests.client.conftest import Server

FAST = PollPolicy(queued_initial=0.02, queued_max=0.1, running_initial=0.02, running_max=0.1)


def test_submit_wait_download_with_local_bytes(
    live: Server, media: dict[str, Path], tmp_path: Path
) -> None:
    with Client(live.url, live.api_key, poll=FAST) as rg:
        frame = media["first"].read_bytes()
        task = rg.image_to_video("a street", frame, duration=3, sound=False, tier="std")
        assert repr(task) == f"Task(id={task.id!r}, status=QUEUED)"
        info = task.wait(30)
        assert info.status is TaskStatus.SUCCESS and info.usage is not None
        [saved] = task.download(tmp_path)
        assert saved == tmp_path / f"{task.id}_1.mp4"
        assert saved.read_bytes() == httpx.get(info.outputs[0].url or "").content
        rg.image_to_video("again", media["first"], duration=3, sound=False, tier="std")
    assert live.upload_count() == 1


class CutAfterCommit(httpx.HTTPTransport):
    """Sends the first submit for real, lets the server commit it, then loses the answer."""

    submits = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path.endswith("/image-to-video"):
            type(self).submits += 1
            if self.submits == 1:
                response.read()
                response.close()
                raise httpx.RemoteProtocolError("server disconnected without sending a response")
        return response


def test_a_lost_answer_over_real_http_yields_one_task(live_idle: Server) -> None:
    with Client(live_idle.url, live_idle.api_key, transport=CutAfterCommit()) as rg:
        task = rg.run(
            "kling-video-o3-std/image-to-video",
            {"prompt": "once", "firstImageUrl": "https://example.com/a.png"},
        )
        assert CutAfterCommit.submits == 2
        assert rg.query(task.id).status is TaskStatus.QUEUED
    assert live_idle.task_count() == 1


def test_still_running_is_not_a_failure(live_idle: Server) -> None:
    with Client(live_idle.url, live_idle.api_key, poll=FAST) as rg:
        task = rg.run(
            "kling-video-o3-std/image-to-video",
            {"prompt": "queued", "firstImageUrl": "https://example.com/a.png"},
        )
        started = time.monotonic()
        with pytest.raises(StillRunning) as caught:
            rg.wait(task.id, timeout=0.2)
        assert time.monotonic() - started < 1.5
        assert caught.value.task_id == task.id
        assert task.cancel().status is TaskStatus.CANCEL
