"""A corpus of requests covering every endpoint and every answer shape, and its recorded answers.

The answers (status, reelgate's headers, body bytes) are recorded once into ``answers.json`` and
checked by ``test_golden.py`` after every change: RunningHub compatibility is byte compatibility,
so a refactor of how answers are built must leave them identical. What differs from run to run
(task ids, link signatures and expiry times, the server's port, seconds of render time, the
token in a result's folder) is replaced by stable placeholders before comparing.

Record again (only when an issue asks for a wire change) with::

    RECORD_GOLDEN=1 python -m pytest tests/golden
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from reelgate.runtime import Runtime
from reelgate.samples import sample_image
from reelgate.service import Service
from reelgate.worker.worker import Worker
from tests.conftest import new_key

ANSWERS = Path(__file__).with_name("answers.json")

I2V = "/openapi/v2/kling-video-o3-pro/image-to-video"
I2V_STD = "/openapi/v2/kling-video-o3-std/image-to-video"
EDIT = "/openapi/v2/kling-video-o3-pro/video-edit"
EDIT_STD = "/openapi/v2/kling-video-o3-std/video-edit"
QUERY = "/openapi/v2/query"
FIRST = "https://example.com/first.png"
VIDEO = "https://example.com/in.mp4"
#: Headers whose value is part of the contract (or of reelgate's documented extensions).
KEPT_HEADERS = (
    "content-type",
    "x-reelgate-poll-after",
    "x-reelgate-progress",
    "allow",
    "retry-after",
)

SEED_I2V = {
    "prompt": "A girl walks down a lantern-lit street at night, the camera slowly follows her",
    "firstImageUrl": FIRST,
    "lastImageUrl": "https://example.com/last.png",
    "duration": 5,
    "sound": True,
    "multiShot": False,
    "shotType": "customize",
}


@dataclass
class Call:
    name: str
    method: str
    path: str
    json_body: Any = None
    content: bytes | None = None
    files: dict[str, Any] | None = None
    data: dict[str, str] | None = None
    #: "good", "poor" (no coins, queue cap 1), "limited" (every request answered rate-limited,
    #: by fault injection), "none" (no Authorization), or a literal key.
    key: str = "good"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Keys:
    good: str
    poor: str
    capped: str
    other: str
    limited: str


def answer_record(response: httpx.Response, normalise: Callable[[str], str]) -> dict[str, Any]:
    headers = {
        name: normalise(response.headers[name]) for name in KEPT_HEADERS if name in response.headers
    }
    return {
        "status": response.status_code,
        "headers": headers,
        "body": normalise(response.content.decode("utf-8", "replace")),
    }


class Normaliser:
    """Stable placeholders for what changes between runs; one per distinct value, in order."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.ids: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        text = text.replace(self.base_url, "<base>")
        text = re.sub(r"(?<!\d)\d{19}(?!\d)", self._task_id, text)
        # A result's folder: the claim that stored it, by its attempt and its random token.
        text = re.sub(r"(/results/<task\d+>/\d+)-[0-9a-f]{8}/", r"\1-<claim>/", text)
        text = re.sub(r"expires=\d+", "expires=<t>", text)
        text = re.sub(r"signature=[0-9a-f]+", "signature=<sig>", text)
        return re.sub(r'"taskCostTime":"\d+"', '"taskCostTime":"<s>"', text)

    def _task_id(self, match: re.Match[str]) -> str:
        return self.ids.setdefault(match.group(0), f"<task{len(self.ids) + 1}>")


def png(width: int = 640, height: int = 360) -> bytes:
    buffer = io.BytesIO()
    sample_image(width, height).save(buffer, format="PNG")
    return buffer.getvalue()


def model_calls() -> Iterator[Call]:
    body = {"prompt": "a lantern street", "firstImageUrl": FIRST}
    yield Call("i2v seed example", "POST", I2V, SEED_I2V)
    yield Call("i2v minimal", "POST", I2V_STD, body)
    yield Call(
        "i2v every field",
        "POST",
        I2V,
        {
            **body,
            "lastImageUrl": FIRST,
            "duration": 15,
            "sound": False,
            "multiShot": True,
            "shotType": "customize",
            "multiPrompt": [{"index": 1, "prompt": "a", "duration": "5"}, "b"],
            "elementList": ["e1", {"id": 2}],
            "somethingNew": [1, 2],
        },
    )
    yield Call(
        "i2v intelligence without prompts",
        "POST",
        I2V,
        {**body, "multiShot": True, "shotType": "intelligence"},
    )
    yield Call("edit minimal", "POST", EDIT, {"prompt": "sepia", "videoUrl": VIDEO})
    yield Call(
        "edit every field",
        "POST",
        EDIT_STD,
        {
            "prompt": "sepia",
            "videoUrl": VIDEO,
            "imageUrls": [FIRST] * 4,
            "keepOriginalSound": False,
        },
    )
    bad: list[tuple[str, str, Any]] = [
        ("missing prompt", I2V, {"firstImageUrl": FIRST}),
        ("missing everything", EDIT, {}),
        ("empty prompt", I2V, {**body, "prompt": ""}),
        ("prompt too long", I2V, {**body, "prompt": "x" * 2501}),
        ("duration as string", I2V, {**body, "duration": "5"}),
        ("duration too short", I2V_STD, {**body, "duration": 2}),
        ("duration too long", I2V, {**body, "duration": 16}),
        ("duration float", I2V, {**body, "duration": 5.0}),
        ("sound as string", I2V, {**body, "sound": "true"}),
        ("shotType unknown", I2V, {**body, "shotType": "random"}),
        ("multiShot without prompts", I2V, {**body, "multiShot": True}),
        ("multiPrompt too long", I2V, {**body, "multiShot": True, "multiPrompt": ["a"] * 7}),
        (
            "multiPrompt sums wrong",
            I2V,
            {**body, "multiShot": True, "multiPrompt": [{"prompt": "a", "duration": 2}]},
        ),
        (
            "multiPrompt bad duration",
            I2V,
            {**body, "multiShot": True, "multiPrompt": [{"prompt": "a", "duration": "two"}]},
        ),
        ("multiPrompt blank item", I2V, {**body, "multiShot": True, "multiPrompt": [" "]}),
        ("firstImageUrl number", I2V, {**body, "firstImageUrl": 5}),
        (
            "five reference images",
            EDIT,
            {"prompt": "p", "videoUrl": VIDEO, "imageUrls": [FIRST] * 5},
        ),
        ("imageUrls not a list", EDIT_STD, {"prompt": "p", "videoUrl": VIDEO, "imageUrls": FIRST}),
        ("keepOriginalSound int", EDIT, {"prompt": "p", "videoUrl": VIDEO, "keepOriginalSound": 1}),
        ("body is a list", I2V, [1, 2]),
    ]
    for name, path, payload in bad:
        yield Call(name, "POST", path, payload)
    yield Call("invalid JSON", "POST", I2V, content=b"{not json")
    yield Call("empty body", "POST", I2V, content=b"")
    yield Call(
        "form content type",
        "POST",
        I2V,
        content=json.dumps(body).encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    yield Call("unknown model", "POST", "/openapi/v2/kling-video-o3-pro/text-to-video", body)
    yield Call("no key", "POST", I2V, body, key="none")
    yield Call("wrong key", "POST", I2V, body, key="0" * 32)
    yield Call("no key and invalid JSON", "POST", I2V, content=b"{", key="none")
    yield Call("insufficient coins", "POST", I2V, body, key="poor")
    yield Call("queue cap first", "POST", I2V, body, key="capped")
    yield Call("queue cap second", "POST", I2V, body, key="capped")
    yield Call("idempotent first", "POST", I2V, body, headers={"Idempotency-Key": "k-1"})
    yield Call("idempotent repeat", "POST", I2V, body, headers={"Idempotency-Key": "k-1"})
    yield Call(
        "idempotent conflict",
        "POST",
        I2V,
        {**body, "duration": 6},
        headers={"Idempotency-Key": "k-1"},
    )
    yield Call("wrong method on a model", "GET", I2V)


def price_calls() -> Iterator[Call]:
    body = {"prompt": "p", "firstImageUrl": FIRST, "duration": 10, "sound": False}
    for path in (I2V, I2V_STD, EDIT, EDIT_STD):
        payload = body if "image-to-video" in path else {"prompt": "p", "videoUrl": VIDEO}
        yield Call(f"price {path}", "POST", path.replace("/v2/", "/v2/price-preview/"), payload)
    preview = I2V.replace("/v2/", "/v2/price-preview/")
    yield Call("price invalid", "POST", preview, {**body, "duration": 1})
    yield Call("price unknown model", "POST", "/openapi/v2/price-preview/acme/video", body)
    yield Call("price no key", "POST", preview, body, key="none")
    yield Call("price not JSON", "POST", preview, content=b"[")


def account_calls() -> Iterator[Call]:
    yield Call(
        "account key in body", "POST", "/uc/openapi/accountStatus", {"apikey": "<good>"}, key="none"
    )
    yield Call(
        "account key as apiKey",
        "POST",
        "/uc/openapi/accountStatus",
        {"apiKey": "<good>"},
        key="none",
    )
    yield Call("account bearer fallback", "POST", "/uc/openapi/accountStatus", {})
    yield Call(
        "account wrong key", "POST", "/uc/openapi/accountStatus", {"apikey": "nope"}, key="none"
    )
    yield Call("account no key", "POST", "/uc/openapi/accountStatus", {}, key="none")
    yield Call("account wrong method", "GET", "/uc/openapi/accountStatus")
    yield Call("queue status", "GET", "/openapi/v2/queue/status")
    yield Call("queue status no key", "GET", "/openapi/v2/queue/status", key="none")
    yield Call("queue status wrong method", "POST", "/openapi/v2/queue/status")


def upload_calls() -> Iterator[Call]:
    image = png()
    upload = "/openapi/v2/media/upload/binary"
    yield Call("upload png", "POST", upload, files={"file": ("first.png", image, "image/png")})
    yield Call("upload again", "POST", upload, files={"file": ("again.png", image, "image/png")})
    yield Call(
        "upload html as png",
        "POST",
        upload,
        files={"file": ("x.png", b"<html><body>hi</body></html>", "image/png")},
    )
    yield Call("upload empty", "POST", upload, files={"file": ("x.png", b"", "image/png")})
    yield Call("upload no file field", "POST", upload, files={"other": ("x.png", image)})
    yield Call("upload not multipart", "POST", upload, {"file": "x"})
    yield Call("upload no key", "POST", upload, files={"file": ("x.png", image)}, key="none")
    yield Call("upload wrong key", "POST", upload, files={"file": ("x.png", image)}, key="bad")
    legacy = "/task/openapi/upload"
    yield Call(
        "legacy upload",
        "POST",
        legacy,
        files={"file": ("f.png", image)},
        data={"apiKey": "<good>", "fileType": "image"},
        key="none",
    )
    yield Call(
        "legacy upload default type",
        "POST",
        legacy,
        files={"file": ("f.png", image)},
        data={"apiKey": "<good>"},
        key="none",
    )
    yield Call("legacy upload no key", "POST", legacy, files={"file": ("f.png", image)}, key="none")


def operations_calls() -> Iterator[Call]:
    yield Call("healthz", "GET", "/healthz", key="none")
    yield Call("readyz", "GET", "/readyz", key="none")
    yield Call("unknown path", "GET", "/nothing/here", key="none")
    yield Call("file without signature", "GET", "/files/openapi/x.png", key="none")
    yield Call(
        "file bad signature",
        "GET",
        "/files/openapi/x.png?expires=99999999999&signature=00",
        key="none",
    )
    yield Call("file expired", "GET", "/files/openapi/x.png?expires=1&signature=00", key="none")


def task_calls(ids: dict[str, str]) -> Iterator[Call]:
    """Query, cancel, status and outputs of tasks in every state (ids made by ``make_tasks``)."""
    for state, task_id in ids.items():
        yield Call(f"query {state}", "POST", QUERY, {"taskId": task_id})
        yield Call(
            f"v1 status {state}",
            "POST",
            "/task/openapi/status",
            {"apiKey": "<good>", "taskId": task_id},
            key="none",
        )
        yield Call(
            f"v1 outputs {state}",
            "POST",
            "/task/openapi/outputs",
            {"apiKey": "<good>", "taskId": task_id},
            key="none",
        )
    yield Call("query as integer", "POST", QUERY, {"taskId": int(ids["queued"])})
    yield Call("query other key", "POST", QUERY, {"taskId": ids["queued"]}, key="other")
    yield Call("query unknown", "POST", QUERY, {"taskId": "1999999999999999999"})
    yield Call("query malformed", "POST", QUERY, {"taskId": "abc"})
    yield Call("query missing", "POST", QUERY, {})
    yield Call("query null", "POST", QUERY, {"taskId": None})
    yield Call("query no key", "POST", QUERY, {"taskId": ids["queued"]}, key="none")
    yield Call("query invalid JSON", "POST", QUERY, content=b"{")
    yield Call("query wrong method", "GET", QUERY)
    cancel = "/task/openapi/cancel"
    yield Call(
        "cancel finished",
        "POST",
        cancel,
        {"apiKey": "<good>", "taskId": ids["success"]},
        key="none",
    )
    yield Call("cancel unknown", "POST", cancel, {"apiKey": "<good>", "taskId": "1"}, key="none")
    yield Call("cancel no key", "POST", cancel, {"taskId": ids["queued"]}, key="none")
    yield Call("cancel bearer fallback", "POST", cancel, {"taskId": ids["to_cancel"]})
    yield Call("query after cancel", "POST", QUERY, {"taskId": ids["to_cancel"]})
    yield Call("cancel wrong method", "GET", cancel)
    yield Call(
        "v1 status missing id", "POST", "/task/openapi/status", {"apiKey": "<good>"}, key="none"
    )


def rate_limited_calls(ids: dict[str, str]) -> Iterator[Call]:
    """Every answer shape of a rate-limited request (HTTP 429, ``Retry-After``)."""
    body = {"prompt": "a lantern street", "firstImageUrl": FIRST}
    yield Call("limited submit", "POST", I2V, body, key="limited")
    yield Call("limited query", "POST", QUERY, {"taskId": ids["running"]}, key="limited")
    yield Call(
        "limited query as integer", "POST", QUERY, {"taskId": int(ids["queued"])}, key="limited"
    )
    yield Call("limited query invalid JSON", "POST", QUERY, content=b"{", key="limited")
    yield Call(
        "limited price",
        "POST",
        I2V.replace("/v2/", "/v2/price-preview/"),
        body,
        key="limited",
    )
    yield Call("limited queue status", "GET", "/openapi/v2/queue/status", key="limited")
    yield Call(
        "limited account", "POST", "/uc/openapi/accountStatus", {"apikey": "<limited>"}, key="none"
    )
    yield Call(
        "limited v1 status",
        "POST",
        "/task/openapi/status",
        {"apiKey": "<limited>", "taskId": ids["running"]},
        key="none",
    )
    yield Call(
        "limited upload",
        "POST",
        "/openapi/v2/media/upload/binary",
        files={"file": ("x.png", png(320, 320))},
        key="limited",
    )
    yield Call(
        "limited legacy upload",
        "POST",
        "/task/openapi/upload",
        files={"file": ("f.png", png(320, 320))},
        data={"apiKey": "<limited>"},
        key="none",
    )


def make_tasks(
    http: httpx.Client, runtime: Runtime, base_url: str, image_url: str
) -> dict[str, str]:
    """One task per state: queued, running, success, failed (by its media), cancel."""
    body = {"prompt": "a lantern street", "firstImageUrl": image_url, "duration": 3}
    worker = Worker(runtime, concurrency=1)
    try:
        success = http.post(I2V, json=body).json()["taskId"]
        assert worker.run_once() == int(success)
        # A link to an endpoint that answers JSON, not an image: the worker rejects it (1013).
        failed = http.post(I2V, json={**body, "firstImageUrl": f"{base_url}/healthz"}).json()[
            "taskId"
        ]
        assert worker.run_once() == int(failed)
        cancelled = http.post(I2V, json=body).json()["taskId"]
        http.post("/task/openapi/cancel", json={"taskId": cancelled})
        running = http.post(I2V, json=body).json()["taskId"]
        assert worker._claim() is not None  # claimed, never rendered: RUNNING for the corpus
        queued = http.post(I2V_STD, json=body).json()["taskId"]
        to_cancel = http.post(I2V_STD, json=body).json()["taskId"]
    finally:
        worker.fetcher.close()
    return {
        "success": success,
        "failed": failed,
        "cancel": cancelled,
        "running": running,
        "queued": queued,
        "to_cancel": to_cancel,
    }


def run_corpus(runtime: Runtime, base_url: str) -> list[dict[str, Any]]:
    keys = Keys(
        good=new_key(runtime, coins=1_000_000),
        poor=new_key(runtime, coins=10),
        capped=new_key(runtime, queue_cap=1),
        other=new_key(runtime),
        limited=new_key(runtime),
    )
    Service(runtime).set_key_faults(keys.limited, {"rate_limit_rate": 1})
    normalise = Normaliser(base_url)
    records: list[dict[str, Any]] = []
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {keys.good}"}, timeout=60
    ) as http:
        uploaded = http.post(
            "/openapi/v2/media/upload/binary", files={"file": ("first.png", png(), "image/png")}
        ).json()
        ids = make_tasks(http, runtime, base_url, uploaded["data"]["download_url"])
        calls = [
            *model_calls(),
            *price_calls(),
            *account_calls(),
            *upload_calls(),
            *operations_calls(),
            *task_calls(ids),
            *rate_limited_calls(ids),
        ]
        for call in calls:
            response = send(http, call, keys)
            records.append({"name": call.name, **answer_record(response, normalise)})
    return records


def _with_keys(value: Any, keys: Keys) -> Any:
    if isinstance(value, str):
        return value.replace("<good>", keys.good).replace("<limited>", keys.limited)
    if isinstance(value, dict):
        return {k: _with_keys(v, keys) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_keys(v, keys) for v in value]
    return value


def send(http: httpx.Client, call: Call, keys: Keys) -> httpx.Response:
    headers = dict(call.headers)
    named = {
        "good": keys.good,
        "poor": keys.poor,
        "capped": keys.capped,
        "other": keys.other,
        "limited": keys.limited,
    }
    if call.key == "none":
        headers["Authorization"] = ""
    else:
        headers["Authorization"] = f"Bearer {named.get(call.key, call.key)}"
    kwargs: dict[str, Any] = {"headers": headers}
    if call.files is not None:
        kwargs["files"] = call.files
        if call.data is not None:
            kwargs["data"] = _with_keys(call.data, keys)
    elif call.content is not None:
        kwargs["content"] = call.content
    elif call.json_body is not None:
        kwargs["json"] = _with_keys(call.json_body, keys)
    request = http.build_request(call.method, call.path, **kwargs)
    if call.key == "none":
        del request.headers["Authorization"]
    return http.send(request)
