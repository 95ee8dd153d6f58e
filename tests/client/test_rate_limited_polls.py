"""The SDK waits out a rate-limited poll (HTTP 429, ``Retry-After``) and still ends with the task's
real result."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.client import AsyncClient, Client, PollPolicy, TaskStatus
from tests.client.conftest import asgi, over_http, running_server

pytestmark = pytest.mark.anyio

#: Polls far faster than the server allows (one query per key and second), the server's
#: one-second poll hint included.
EAGER = PollPolicy(
    queued_initial=0.01,
    queued_max=0.02,
    running_initial=0.01,
    running_max=0.02,
    min_interval=0.01,
    max_interval=0.05,
)
LIMITED = {"query_rate_limit_per_second": 1, "rate_limit_window_seconds": 1}


def body(media: dict[str, Path]) -> dict[str, Any]:
    """A request the stub engine takes about three seconds to render (polled while RUNNING)."""
    return {"prompt": "slow", "firstImageUrl": media["first"], "duration": 3}


def check(seen: list[tuple[int, str | None]]) -> None:
    """Polls were refused, each refusal said when to come back, and was waited out."""
    refused = [after for status, after in seen if status == 429]
    assert refused and all(after == "1" for after in refused)
    statuses = [status for status, _ in seen]
    assert all(a != 429 or b != 429 for a, b in itertools.pairwise(statuses))


class Recording(httpx.AsyncBaseTransport):
    """The app's transport, keeping each answer's status and ``Retry-After``."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.seen: list[tuple[int, str | None]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.seen.append((response.status_code, response.headers.get("Retry-After")))
        return response


class RecordingSync(httpx.BaseTransport):
    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.seen: list[tuple[int, str | None]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        self.seen.append((response.status_code, response.headers.get("Retry-After")))
        return response

    def close(self) -> None:
        self.inner.close()


async def test_wait_ends_with_the_real_result_through_429s(
    tmp_path: Path, media: dict[str, Path]
) -> None:
    with running_server(tmp_path / "server", worker=True, **LIMITED) as server:
        transport = Recording(asgi(server))
        async with AsyncClient(server.url, server.api_key, transport=transport, poll=EAGER) as rg:
            task = await rg.run("kling-video-o3-std/image-to-video", body(media))
            info = await task.wait(timeout=60)
    assert info.status is TaskStatus.SUCCESS and info.outputs
    check(transport.seen)


def test_the_blocking_client_waits_too(tmp_path: Path, media: dict[str, Path]) -> None:
    transport = RecordingSync()
    with (
        running_server(tmp_path / "sync", worker=True, **LIMITED) as server,
        over_http(server) as live,
        Client(live.url, live.api_key, transport=transport, poll=EAGER) as rg,
    ):
        info = rg.run("kling-video-o3-std/image-to-video", body(media)).wait(timeout=60)
    assert info.status is TaskStatus.SUCCESS and info.outputs
    check(transport.seen)
