"""``AsyncClient`` against a real reelgate app, in-process through ``httpx.ASGITransport``."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from reelgate.client import (
    DEFAULT_RETRY,
    NO_RETRY,
    APIError,
    AsyncClient,
    InsufficientBalance,
    InvalidApiKey,
    InvalidParameters,
    PollPolicy,
    QueueFull,
    RateLimited,
    ResponseLost,
    RetryPolicy,
    StillRunning,
    TaskCancelled,
    TaskFailed,
    TaskNotFound,
    TaskStatus,
)
from tests.client.conftest import Server, asgi, running_server

pytestmark = pytest.mark.anyio

FAST = PollPolicy(queued_initial=0.02, queued_max=0.1, running_initial=0.02, running_max=0.1)


def client(
    server: Server,
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
    idempotency: bool | None = None,
) -> AsyncClient:
    return AsyncClient(
        server.url,
        server.api_key,
        transport=transport or asgi(server),
        poll=FAST,
        retry=retry,
        idempotency=idempotency,
    )


async def test_local_files_are_uploaded_once_and_outputs_saved(
    server: Server, media: dict[str, Path], tmp_path: Path
) -> None:
    async with client(server) as rg:
        task = await rg.image_to_video(
            "a street at dusk",
            media["first"],
            last_image=str(media["last"]),
            duration=3,
            sound=False,
            tier="std",
        )
        assert len(task.id) == 19 and task.id.isdigit()
        info = await task.wait(30)
        assert info.status is TaskStatus.SUCCESS
        files = await task.download(tmp_path / "out")
        assert [f.name for f in files] == [f"{task.id}_1.mp4"]
        assert files[0].stat().st_size > 0
        assert not list((tmp_path / "out").glob(".*.part"))

        # The same content again, as bytes this time: nothing new is uploaded.
        again = await rg.image_to_video(
            "the same street", media["first"].read_bytes(), duration=3, sound=False, tier="std"
        )
        await again.wait(30)
    assert server.upload_count() == 2  # first and last frame, once each


async def test_video_edit_with_reference_images(
    server: Server, media: dict[str, Path], tmp_path: Path
) -> None:
    async with client(server) as rg:
        task = await rg.video_edit(
            "make it sepia", media["video"], images=[media["first"]], keep_sound=False, tier="pro"
        )
        info = await task.wait(30)
        assert info.outputs[0].output_type == "mp4"
        assert (await rg.download(task.id, tmp_path))[0].name == f"{task.id}_1.mp4"


async def test_wait_deadline_raises_still_running_with_the_task_id(
    idle_server: Server, media: dict[str, Path]
) -> None:
    async with client(idle_server) as rg:
        task = await rg.image_to_video("waits forever", media["first"], duration=3, tier="std")
        started = time.monotonic()
        with pytest.raises(StillRunning) as caught:
            await task.wait(timeout=0.3)
        assert 0.3 <= time.monotonic() - started < 2
        assert caught.value.task_id == task.id
        assert task.id in str(caught.value) and "QUEUED" in str(caught.value)
        # The task is untouched: still queued, not failed.
        assert (await rg.query(task.id)).status is TaskStatus.QUEUED


async def test_failed_and_cancelled_tasks_end_the_wait(
    server: Server, idle_server: Server, media: dict[str, Path]
) -> None:
    async with client(server) as rg:
        failing = await rg.image_to_video("please fail", media["first"], duration=3, tier="std")
        with pytest.raises(TaskFailed) as caught:
            await failing.wait(30)
        assert caught.value.task_id == failing.id and caught.value.error_code
        info = await rg.wait(failing.id, 5, raise_on_failure=False)
        assert info.status is TaskStatus.FAILED
    async with client(idle_server) as rg:
        queued = await rg.image_to_video("never runs", media["first"], duration=3, tier="std")
        await queued.cancel()
        with pytest.raises(TaskCancelled):
            await queued.wait(5)
        assert queued.status is TaskStatus.CANCEL


class CutAfterCommit(httpx.AsyncBaseTransport):
    """Delivers the first submit to the server, then drops the connection before the answer."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.submits: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path.endswith("/image-to-video"):
            self.submits.append(request)
            if len(self.submits) == 1:
                await response.aread()
                raise httpx.ReadError("connection reset by peer")
        return response


async def test_lost_submit_answer_is_retried_with_its_idempotency_key_into_one_task(
    idle_server: Server,
) -> None:
    cut = CutAfterCommit(asgi(idle_server))
    async with client(idle_server, cut) as rg:
        coins = (await rg.account()).coins
        task = await rg.image_to_video(
            "once", "https://example.com/a.png", duration=3, sound=False, tier="std"
        )
        assert len(cut.submits) == 2
        keys = {r.headers["Idempotency-Key"] for r in cut.submits}
        assert len(keys) == 1
        assert idle_server.task_count() == 1
        assert coins is not None
        assert (await rg.account()).coins == coins - 3 * 52  # paid once
        assert (await rg.query(task.id)).status is TaskStatus.QUEUED


async def test_without_idempotency_a_lost_submit_answer_is_never_resubmitted(
    idle_server: Server,
) -> None:
    cut = CutAfterCommit(asgi(idle_server))
    async with client(idle_server, cut, idempotency=False) as rg:
        with pytest.raises(ResponseLost):
            await rg.image_to_video("once", "https://example.com/a.png", duration=3, tier="std")
    assert len(cut.submits) == 1
    assert idle_server.task_count() == 1


async def test_server_refusals_map_to_the_error_tree(idle_server: Server) -> None:
    body = {"prompt": "x", "firstImageUrl": "https://example.com/a.png", "duration": 3}
    path = "kling-video-o3-std/image-to-video"
    cases: list[tuple[AsyncClient, type[APIError]]] = [
        (AsyncClient(idle_server.url, "not-a-key", transport=asgi(idle_server)), InvalidApiKey),
        (
            AsyncClient(idle_server.url, idle_server.new_key(coins=0), transport=asgi(idle_server)),
            InsufficientBalance,
        ),
        (
            AsyncClient(
                idle_server.url,
                idle_server.new_key(queue_cap=0),
                transport=asgi(idle_server),
                retry=NO_RETRY,
            ),
            QueueFull,
        ),
    ]
    for rg, error in cases:
        async with rg:
            with pytest.raises(error) as caught:
                await rg.run(path, body)
            assert caught.value.code
    async with client(idle_server) as rg:
        with pytest.raises(TaskNotFound):
            await rg.query("1234567890123456789")
        with pytest.raises(InvalidParameters):
            await rg.run("kling-video-o3-pro/no-such-model", body)
    assert idle_server.task_count() == 0


async def test_rate_limits_are_retried_after_a_pause(tmp_path: Path) -> None:
    with running_server(
        tmp_path / "limited",
        worker=False,
        query_rate_limit_per_second=5,
        rate_limit_window_seconds=1,
    ) as srv:
        async with client(srv, retry=NO_RETRY) as rg:
            task = await rg.run(
                "kling-video-o3-std/image-to-video",
                {"prompt": "x", "firstImageUrl": "https://example.com/a.png"},
            )
            with pytest.raises(RateLimited) as caught:
                for _ in range(30):
                    await task.refresh()
            assert caught.value.retryable and caught.value.code == "1003"
        async with client(srv, retry=RetryPolicy(max_attempts=10, backoff=0.1)) as rg:
            for _ in range(15):
                assert (await rg.query(task.id)).status is TaskStatus.QUEUED


async def test_account_queue_and_price(server: Server) -> None:
    async with client(server) as rg:
        account = await rg.account()
        assert account.coins == 100_000
        queue = await rg.queue_status()
        assert queue.concurrent_limit == 2 and queue.running_count == 0
        body = {"prompt": "x", "firstImageUrl": "https://example.com/a.png", "sound": False}
        three = await rg.price("kling-video-o3-std/image-to-video", {**body, "duration": 3})
        six = await rg.price("kling-video-o3-std/image-to-video", {**body, "duration": 6})
        assert three.estimated_price and six.estimated_price == 2 * three.estimated_price
        assert (await rg.account()).coins == 100_000  # a preview costs nothing
