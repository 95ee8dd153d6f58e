"""Property-based fuzzing of every endpoint, generated from reelgate's own OpenAPI document.

Schemathesis builds requests from ``docs/openapi.json`` — valid ones and deliberately invalid
ones — and sends them over real HTTP to a real server. The budget of examples is fixed and the
generation derandomised, so a run is reproducible and its length bounded. Every answer must be
below 500 and carry a documented RunningHub code; afterwards the same server still runs a good
task to SUCCESS.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.core.result import Ok

from reelgate.core.errors import V2_MESSAGES
from reelgate.runtime import Runtime
from reelgate.worker.worker import Worker
from tests.conftest import LiveServer, make_settings, new_key
from tests.integration.test_end_to_end import data_uri, png_bytes, wait

SCHEMA = schemathesis.openapi.from_path(
    str(Path(__file__).resolve().parents[2] / "docs" / "openapi.json")
)
#: Examples per operation and generation mode: about 20 operations × 2 modes × this.
EXAMPLES = 25


#: RunningHub's documented v1 codes (contract §8.1) and what the upload envelope carries (401
#: and the v2 numbers), plus ``1`` of getWebhookDetail. 500 UNKNOWN_ERROR is what a crash
#: answers, and clients retry it forever: never acceptable here.
V1_CODES = {
    0, 1, 301, 380, 401, 412, 415, 416, 421, 423, 433, 435, 436,
    *range(801, 815), 901,
    *(int(code) for code in V2_MESSAGES),
}  # fmt: skip


#: What ``code`` an OpenAI-shaped error (``/v1/``) may carry: a RunningHub code (v2, or the v1
#: ``outputs`` states of a video without content yet), or none (an unknown path).
OPENAI_CODES = {None, *V2_MESSAGES, "804", "805", "813"}


def assert_documented(response: Any, where: str) -> None:
    assert response.status_code < 500, f"{where}: HTTP {response.status_code} {response.text}"
    if "json" not in response.headers.get("content-type", ""):
        return
    body = response.json()
    if not isinstance(body, dict):
        return
    if isinstance(body.get("error"), dict):
        # OpenAI's shape (the /v1/ paths): its documented fields, a 4xx status, a known code.
        error = body["error"]
        assert set(error) == {"message", "type", "param", "code"}, f"{where}: {body}"
        assert isinstance(error["message"], str) and isinstance(error["type"], str), where
        assert error["param"] is None or isinstance(error["param"], str), f"{where}: {body}"
        assert error["code"] in OPENAI_CODES, f"{where}: {body}"
        assert 400 <= response.status_code < 500, f"{where}: {response.status_code} {body}"
        return
    if "errorCode" in body:
        assert body["errorCode"] in {"", *V2_MESSAGES}, f"{where}: {body}"
    if "code" in body:
        assert body["code"] in V1_CODES, f"{where}: {body}"
    if "error" in body:
        assert body["error"] in {*V2_MESSAGES, "404", "405"}, f"{where}: {body}"


def documented_operations() -> list[APIOperation[Any, Any, Any, Any]]:
    """Every operation of the document; one that schemathesis cannot read fails the test."""
    operations = []
    for result in SCHEMA.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    return operations


def fuzz(
    operation: APIOperation[Any, Any, Any, Any],
    mode: GenerationMode,
    base_url: str,
    auth: dict[str, str],
) -> None:
    """Send the operation's generated requests (``mode``: valid or invalid ones) and check every
    answer."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def exchange(case: Case[Any]) -> None:
        response = case.call(base_url=base_url, headers=auth, timeout=30)
        assert_documented(response, f"{case.method} {case.formatted_path} ({mode.value})")

    exchange()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Runtime, LiveServer, str]]:
    runtime = Runtime.open(make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'f.db'}"))
    key = new_key(runtime, concurrency=1)
    try:
        with LiveServer(runtime) as live:
            yield runtime, live, key
    finally:
        runtime.close()


def test_fuzzing_every_endpoint_finds_no_server_error_and_only_documented_codes(
    server: tuple[Runtime, LiveServer, str],
) -> None:
    runtime, live, key = server
    auth = {"Authorization": f"Bearer {key}"}
    operations = documented_operations()
    assert len(operations) >= 15  # the document really describes the API
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz(operation, mode, live.url, auth)
            except Unsatisfiable:
                # Nothing to make invalid (no body, parameters or headers): nothing to send.
                assert mode is GenerationMode.NEGATIVE, operation

    # The server is unhurt: a good task still runs to SUCCESS.
    stop = threading.Event()
    worker = Worker(runtime, concurrency=1, shutdown_grace_seconds=5)
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=live.url, headers=auth, timeout=30) as http:
            # Cancel what the fuzzing queued, so the good task does not wait behind it.
            body = {
                "prompt": "a calm pan",
                "firstImageUrl": data_uri(png_bytes(320, 320)),
                "duration": 3,
                "sound": False,
            }
            submitted = http.post("/openapi/v2/kling-video-o3-std/image-to-video", json=body)
            task = wait(http, submitted.json()["taskId"], timeout=240)
            assert task["status"] == "SUCCESS", task
    finally:
        stop.set()
        thread.join(60)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_a_wrong_method_on_any_documented_path_answers_a_documented_code(
    server: tuple[Runtime, LiveServer, str], method: str
) -> None:
    _runtime, live, key = server
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}"}) as http:
        for operation in documented_operations():
            if operation.method.upper() == method:
                continue
            path = operation.path.replace("{key}", "openapi/x.png")
            path = path.replace("{video_id}", "video_1")
            assert_documented(http.request(method, path), f"{method} {path}")
