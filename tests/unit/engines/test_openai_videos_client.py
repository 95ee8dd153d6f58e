"""The ``openai-videos`` engine's client against the answers other ``/v1/videos`` servers give.

SGLang-Diffusion, vLLM-Omni and OpenAI are not ours: their answers are played back here by
``httpx.MockTransport``, in each server's own shape. Another reelgate is tested for real in
``tests/integration/test_openai_videos_engine.py``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from reelgate.engines.openai_videos.client import (
    RemoteRefused,
    RemoteTrouble,
    RemoteVideo,
    VideosClient,
    contract_code,
)

Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler) -> VideosClient:
    return VideosClient(
        "http://gpu.test/v1", "sk-x", timeout=5, transport=httpx.MockTransport(handler)
    )


def answering(status: int, body: object, headers: dict[str, str] | None = None) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return handle


def create(handler: Handler) -> RemoteVideo:
    files = {"input_reference": ("first.png", io.BytesIO(b"\x89PNG"), "image/png")}
    return client(handler).create({"prompt": "p"}, files, idempotency_key="reelgate-1")


def test_the_create_is_a_multipart_form_with_the_key_and_the_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "video_9", "status": "queued", "progress": 0})

    video = create(handle)
    (request,) = seen
    assert (request.method, str(request.url)) == ("POST", "http://gpu.test/v1/videos")
    assert request.headers["authorization"] == "Bearer sk-x"
    assert request.headers["idempotency-key"] == "reelgate-1"
    assert request.headers["content-type"].startswith("multipart/form-data")
    form = request.content
    assert b'name="prompt"' in form and b'name="input_reference"; filename="first.png"' in form
    assert (video.id, video.status, video.progress, video.done) == ("video_9", "queued", 0.0, False)


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        # SGLang-Diffusion (FastAPI's HTTPException): {"detail": …}
        (400, {"detail": "input_reference file is required"}, "1007"),
        (404, {"detail": "Video not found"}, "1007"),
        # vLLM-Omni: an OpenAI-shaped error whose code is the HTTP status
        (400, {"error": {"message": "bad size", "type": "BadRequestError", "code": 400}}, "1007"),
        (422, {"detail": [{"loc": ["body", "prompt"], "msg": "Field required"}]}, "1007"),
        # OpenAI itself
        (401, {"error": {"message": "Incorrect API key", "code": "invalid_api_key"}}, "1010"),
        (413, "Request Entity Too Large", "1008"),
        # another reelgate: the contract's own code, passed on as it is
        (400, {"error": {"message": "x", "type": "invalid_request_error", "code": "1013"}}, "1013"),
        (429, {"error": {"message": "coins", "type": "insufficient_quota", "code": "416"}}, "416"),
    ],
)
def test_refusals_become_the_contracts_codes(status: int, body: object, code: str) -> None:
    with pytest.raises(RemoteRefused) as refused:
        create(answering(status, body))
    assert (refused.value.code, refused.value.status) == (code, status)
    assert refused.value.message  # the server's words, or its status line


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (429, {"error": {"message": "slow down", "code": "rate_limit_exceeded"}}),
        (503, {"detail": "model is loading"}),
        (500, "Internal Server Error"),
        (400, {"error": {"message": "busy", "code": "1011"}}),  # a reelgate that is busy
    ],
)
def test_busy_or_failing_servers_are_trouble_to_wait_out_and_took_nothing(
    status: int, body: object
) -> None:
    with pytest.raises(RemoteTrouble) as trouble:
        create(answering(status, body, {"retry-after": "3"}))
    assert not trouble.value.sent  # it answered: it did not take the job
    assert trouble.value.retry_after == 3.0


def test_a_create_that_never_connected_was_not_sent_and_a_lost_answer_may_have_been() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def lose(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    with pytest.raises(RemoteTrouble) as unsent:
        create(refuse)
    assert not unsent.value.sent
    with pytest.raises(RemoteTrouble) as lost:
        create(lose)
    assert lost.value.sent


def test_jobs_are_read_leniently_whatever_the_server_sends() -> None:
    sglang_failed = {"id": "abc", "status": "failed", "error": {"message": "CUDA out of memory"}}
    video = RemoteVideo.parse(sglang_failed)
    assert (video.done, video.error_code, video.error_message) == (True, "", "CUDA out of memory")
    reelgate_failed = {
        "id": "video_1",
        "status": "failed",
        "error": {"code": "1013", "message": "m"},
    }
    assert RemoteVideo.parse(reelgate_failed).error_code == "1013"
    assert (
        RemoteVideo.parse({"id": "x", "status": "in_progress", "progress": 42.5}).progress == 42.5
    )
    with pytest.raises(RemoteTrouble):
        RemoteVideo.parse({"status": "queued"})  # no id: not a job


def test_a_retrieve_carries_the_servers_poll_hint() -> None:
    handle = answering(200, {"id": "v", "status": "queued"}, {"openai-poll-after-ms": "2500"})
    assert client(handle).retrieve("v").poll_after == 2.5


def test_a_delete_of_a_job_the_server_forgot_is_no_error() -> None:
    assert client(answering(200, {"id": "v", "deleted": True})).delete("v") is True
    assert client(answering(404, {"detail": "Video not found"})).delete("v") is False
    with pytest.raises(RemoteTrouble):
        client(answering(502, "Bad Gateway")).delete("v")


def test_the_content_is_streamed_to_a_file(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 1000

    def content(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/videos/v/content"
        return httpx.Response(200, content=payload, headers={"content-type": "video/mp4"})

    dest = tmp_path / "out.mp4"
    assert client(content).download("v", dest) == "video/mp4"
    assert dest.read_bytes() == payload
    with pytest.raises(RemoteRefused) as missing:
        client(answering(404, {"detail": "Generation is still in-progress"})).download("v", dest)
    assert missing.value.code == "1007"


def test_readiness_is_the_list_of_videos_answering() -> None:
    assert client(answering(200, {"object": "list", "data": []})).check() == ""
    assert "HTTP 401" in client(answering(401, {"detail": "no"})).check()

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    assert "does not answer" in client(down).check()


def test_codes_by_status_when_the_server_names_none() -> None:
    assert [contract_code(s, "") for s in (400, 401, 403, 404, 409, 413, 415, 422, 418)] == [
        "1007", "1010", "1010", "1007", "1007", "1008", "1013", "1007", "1015",
    ]  # fmt: skip
    assert contract_code(400, "1001") == "1001"
    assert contract_code(400, "invalid_value") == "1007"
