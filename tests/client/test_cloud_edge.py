"""Behaviour against RunningHub's cloud, which tests cannot call: a ``MockTransport`` speaks its
documented wire format (contract §5, §6, §8, §9). This is the only place the SDK is mocked."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.client import (
    RUNNINGHUB_AI,
    AccessDenied,
    APIError,
    Client,
    ConnectError,
    ContentRejected,
    DownloadError,
    FinalError,
    InsufficientBalance,
    InvalidApiKey,
    InvalidParameters,
    PollPolicy,
    QueueFull,
    RateLimited,
    RequestValidationError,
    ResponseLost,
    RetryableError,
    RetryPolicy,
    ServerError,
    ServiceUnavailable,
    StillRunning,
    TaskFailed,
    TaskNotFound,
    TaskStatus,
    UnexpectedResponse,
)

KEY = "rh-secret-0123456789abcdef"
TASK = "2009191190196789249"
FAST = PollPolicy(queued_initial=0.01, queued_max=0.02, running_initial=0.01, running_max=0.02)
QUICK_RETRY = RetryPolicy(max_attempts=4, backoff=0.01, max_backoff=0.02)
Handler = Callable[[httpx.Request], httpx.Response]


def v2(status: str = "QUEUED", code: str = "", message: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "taskId": TASK if status else "",
        "status": status,
        "errorCode": code,
        "errorMessage": message,
        "results": None,
        "clientId": "",
        "promptTips": "",
        **extra,
    }


class Cloud:
    """Records requests and answers each with the next scripted step."""

    def __init__(self, *steps: Handler | httpx.Response | dict[str, Any]) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, httpx.Response):
            return step
        if isinstance(step, dict):
            return httpx.Response(200, json=step)
        return step(request)

    def client(self, base_url: str = RUNNINGHUB_AI, **kw: Any) -> Client:
        kw.setdefault("retry", QUICK_RETRY)
        return Client(base_url, KEY, transport=httpx.MockTransport(self), poll=FAST, **kw)


def raise_(exc: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


BODY = {"prompt": "a cat", "firstImageUrl": "https://example.com/cat.png", "duration": 5}
I2V = "kling-video-o3-pro/image-to-video"


@pytest.mark.parametrize(
    ("code", "error", "retryable"),
    [
        ("1002", InvalidApiKey, False),
        ("1003", RateLimited, True),
        ("1007", InvalidParameters, False),
        ("1010", ServiceUnavailable, True),
        ("1011", ServiceUnavailable, True),
        ("421", QueueFull, True),
        ("416", InsufficientBalance, False),
        ("1014", AccessDenied, False),
        ("1501", ContentRejected, False),
        ("1505", ContentRejected, False),
        ("1005", ServerError, True),
        ("9999", FinalError, False),
    ],
)
def test_submit_refusals_raise_their_class(
    code: str, error: type[APIError], retryable: bool
) -> None:
    cloud = Cloud(v2("FAILED", code, "nope") | {"taskId": ""})
    with cloud.client(retry=RetryPolicy(max_attempts=1)) as rg, pytest.raises(error) as caught:
        rg.run(I2V, BODY)
    assert caught.value.retryable is retryable
    assert getattr(caught.value, "code", None) == code


def test_retryable_refusals_are_retried_and_429_obeys_retry_after() -> None:
    cloud = Cloud(
        httpx.Response(429, headers={"Retry-After": "0.3"}),
        v2("", "1003", "slow down"),
        v2("", "421", "queue full"),
        v2("QUEUED"),
    )
    started = time.monotonic()
    with cloud.client() as rg:
        task = rg.run(I2V, BODY)
    assert task.id == TASK and len(cloud.requests) == 4
    assert time.monotonic() - started >= 0.3


def test_on_runninghub_a_submit_with_unknown_outcome_is_never_repeated() -> None:
    for failure in (raise_(httpx.ReadTimeout("slow")), httpx.Response(502), v2("", "1005", "x")):
        cloud = Cloud(failure, v2("QUEUED"))
        with cloud.client() as rg, pytest.raises((ResponseLost, ServerError)):
            rg.run(I2V, BODY)
        assert len(cloud.requests) == 1
        assert "Idempotency-Key" not in cloud.requests[0].headers


def test_a_submit_that_never_left_is_repeated() -> None:
    cloud = Cloud(raise_(httpx.ConnectError("refused")), v2("QUEUED"))
    with cloud.client() as rg:
        assert rg.run(I2V, BODY).id == TASK
    assert len(cloud.requests) == 2
    cloud = Cloud(raise_(httpx.ConnectError("refused")))
    with cloud.client() as rg, pytest.raises(ConnectError):
        rg.run(I2V, BODY)


def test_reads_are_repeated_after_lost_answers_and_server_errors() -> None:
    cloud = Cloud(raise_(httpx.ReadError("reset")), httpx.Response(500), v2("RUNNING"))
    with cloud.client() as rg:
        assert rg.query(TASK).status is TaskStatus.RUNNING


def test_wait_handles_every_status_without_server_hints() -> None:
    done = v2(
        "SUCCESS",
        results=[{"url": "https://cdn.example/o.mp4", "outputType": "mp4"}],
        usage={"consumeCoins": "435", "taskCostTime": "32"},
    )
    cloud = Cloud(v2("QUEUED"), v2("QUEUED"), v2("CREATE"), v2("RUNNING"), done)
    updates: list[TaskStatus] = []
    with cloud.client() as rg:
        info = rg.task(TASK).wait(5, on_update=lambda i: updates.append(i.status))
    assert info.status is TaskStatus.SUCCESS and info.usage and info.usage.coins == 435
    assert updates == [TaskStatus.QUEUED] * 3 + [TaskStatus.RUNNING, TaskStatus.SUCCESS]

    failed = Cloud(v2("RUNNING"), v2("FAILED", "1501", "Content verification failed"))
    with failed.client() as rg, pytest.raises(TaskFailed) as caught:
        rg.task(TASK).wait(5)
    assert isinstance(caught.value.error, ContentRejected) and caught.value.task_id == TASK

    lost = Cloud(v2("", "1004", "Task not found"))
    with lost.client() as rg, pytest.raises(TaskNotFound):
        rg.task(TASK).wait(5)

    odd = Cloud(v2("PAUSED"))
    with odd.client() as rg, pytest.raises(UnexpectedResponse):
        rg.task(TASK).wait(5)


def test_wait_tolerates_transient_poll_failures_until_its_deadline() -> None:
    cloud = Cloud(
        raise_(httpx.ReadError("reset")), v2("", "1003", "slow"), httpx.Response(503), v2("RUNNING")
    )
    with cloud.client() as rg, pytest.raises(StillRunning) as caught:
        rg.task(TASK).wait(0.3)
    assert caught.value.task_id == TASK and caught.value.task.status is TaskStatus.RUNNING


def test_wait_obeys_the_servers_poll_hint() -> None:
    hinted = Cloud(
        httpx.Response(
            200,
            json=v2("RUNNING"),
            headers={"X-Reelgate-Poll-After": "0.2", "X-Reelgate-Progress": "0.5"},
        )
    )
    with hinted.client() as rg, pytest.raises(StillRunning) as caught:
        rg.task(TASK).wait(0.5)
    assert caught.value.task.progress == 0.5
    assert 3 <= len(hinted.requests) <= 5  # about every 0.2 s, not every 0.01 s


def test_a_download_shorter_than_announced_is_not_kept(tmp_path: Path) -> None:
    def cdn(request: httpx.Request) -> httpx.Response:
        if request.url.host == "cdn.example":
            assert "Authorization" not in request.headers  # the key never leaves for the CDN
            return httpx.Response(200, content=b"x" * 10, headers={"Content-Length": "20"})
        return httpx.Response(
            200,
            json=v2(
                "SUCCESS",
                results=[
                    {"url": "https://cdn.example/a/b.MP4?sig=1", "outputType": ""},
                    {"url": None, "outputType": "", "text": "a caption"},
                ],
            ),
        )

    cloud = Cloud(cdn)
    with cloud.client() as rg, pytest.raises(DownloadError):
        rg.download(TASK, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_local_request_errors_send_nothing(tmp_path: Path) -> None:
    cloud = Cloud(v2("QUEUED"))
    with cloud.client() as rg:
        with pytest.raises(RequestValidationError, match="duration"):
            rg.image_to_video("x", "https://example.com/a.png", duration=16)
        with pytest.raises(RequestValidationError, match="neither a URL nor an existing file"):
            rg.image_to_video("x", str(tmp_path / "missing.png"))
        with pytest.raises(RequestValidationError, match="imageUrls"):
            rg.video_edit("x", "https://example.com/a.mp4", images=["https://e.com/i.png"] * 5)
        with pytest.raises(RequestValidationError, match="multiPrompt"):
            rg.run(I2V, {**BODY, "multiShot": True})
    assert cloud.requests == []


def test_uploads_are_streamed_once_per_content(tmp_path: Path) -> None:
    uploads: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/media/upload/binary"):
            uploads.append(request.read())
            return httpx.Response(
                200,
                json={
                    "code": 0,
                    "msg": "success",
                    "errorMessages": None,
                    "data": {
                        "type": "image",
                        "fileName": "openapi/x.png",
                        "size": "8",
                        "download_url": "https://cos/x.png",
                    },
                },
            )
        assert json.loads(request.content)["firstImageUrl"] == "https://cos/x.png"
        return httpx.Response(200, json=v2("QUEUED"))

    image = tmp_path / "cat.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    cloud = Cloud(handler)
    with cloud.client() as rg:
        rg.image_to_video("a", image)
        rg.image_to_video("b", str(image))
        rg.image_to_video("c", image.read_bytes())
        assert rg.upload(image).download_url == "https://cos/x.png"
    assert len(uploads) == 1 and b'filename="cat.png"' in uploads[0]


def test_configuration_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RequestValidationError, match="REELGATE_BASE_URL"):
        Client()
    monkeypatch.setenv("REELGATE_BASE_URL", "https://www.runninghub.cn/")
    with pytest.raises(RequestValidationError, match="REELGATE_API_KEY"):
        Client()
    monkeypatch.setenv("RUNNINGHUB_API_KEY", "from-runninghub-env")
    with Client() as rg:
        assert rg.base_url == "https://www.runninghub.cn" and not rg.idempotency
        assert "from-runninghub-env" in rg._headers()["Authorization"]
    monkeypatch.setenv("REELGATE_API_KEY", "from-reelgate-env")
    with Client("http://localhost:8000") as rg:
        assert "from-reelgate-env" in rg._headers()["Authorization"] and rg.idempotency


def test_the_key_never_appears_in_reprs_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    cloud = Cloud(
        {
            "code": 0,
            "msg": "success",
            "data": {
                "remainCoins": "99999",
                "currentTaskCounts": "0",
                "remainMoney": "999",
                "currency": "CNY",
                "apiType": "SHARED",
            },
        },
        v2("", "1002", "Invalid API Key"),
    )
    caplog.set_level(logging.DEBUG)
    with cloud.client() as rg:
        assert rg.account().coins == 99999
        assert json.loads(cloud.requests[0].content) == {"apikey": KEY}
        with pytest.raises(InvalidApiKey) as caught:
            rg.query(TASK)
        texts = [repr(rg), str(rg.__dict__), caplog.text, str(caught.value), repr(caught.value)]
    assert all(KEY not in text for text in texts)


def test_retryable_errors_share_a_base_class() -> None:
    assert issubclass(RateLimited, RetryableError) and issubclass(QueueFull, RetryableError)
    assert RateLimited.submit_safe and ConnectError.submit_safe and not ServerError.submit_safe
    assert not ResponseLost.retryable
