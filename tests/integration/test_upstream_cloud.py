"""The gateway in front of RunningHub itself, for what only the cloud does: no idempotency, and
its own codes. RunningHub is on the public internet, so it is the one thing mocked here (an
``httpx.MockTransport`` speaking its documented answers); reelgate A is real."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.client import Client
from reelgate.engines.upstream import UpstreamEngine
from reelgate.engines.upstream.prices import UpstreamPrices
from tests.integration.gateway import Node, wait_until_done
from tests.integration.test_upstream import PRO, body, png, upload

CLOUD = "https://www.runninghub.ai"
IMAGES = "https://rh-images.example"
#: A RunningHub model that reelgate's catalogue does not have.
OTHER = "rhart-image-n-pro/edit"
DENIED = "Access Denied: Standard Model API is restricted to Enterprise-Shared API Keys only."


class FakeCloud:
    """RunningHub's answers, as documented; ``on_submit`` decides what a submit gets."""

    def __init__(self) -> None:
        self.submits: list[dict[str, Any]] = []
        self.on_submit: Any = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/uc/openapi/accountStatus":
            data: dict[str, object] = {"remainCoins": "5000", "apiType": "SHARED"}
            return httpx.Response(200, json={"code": 0, "msg": "success", "data": data})
        if path == "/openapi/v2/queue/status":
            data = {"apiKeyType": "SHARED", "concurrentLimit": 1, "runningCount": 0}
            return httpx.Response(200, json={"code": 0, "msg": "success", "data": data})
        if path == "/openapi/v2/media/upload/binary":
            data = {"type": "image", "download_url": f"{CLOUD}/in.png", "fileName": "x.png"}
            return httpx.Response(200, json={"code": 0, "message": "success", "data": data})
        if path == "/openapi/v2/kling-video-o3-pro/image-to-video":
            self.submits.append(json.loads(request.content))
            answer: httpx.Response = self.on_submit(request)
            return answer
        if path == f"/openapi/v2/price-preview/{OTHER}":
            if "imageUrls" not in json.loads(request.content):
                return httpx.Response(200, json=price_error("1007", "imageUrls is required"))
            return httpx.Response(200, json={"errorCode": "", "estimatedPrice": 0.5})
        if path == f"/openapi/v2/{OTHER}":
            self.submits.append(json.loads(request.content))
            return httpx.Response(200, json=task_answer("9001", "QUEUED"))
        if path == "/openapi/v2/query":
            output = [{"url": f"{IMAGES}/out.png", "outputType": "png"}]
            return httpx.Response(200, json=task_answer("9001", "SUCCESS", output))
        if request.url.host == "rh-images.example":
            return httpx.Response(200, content=png(320, 240))
        return httpx.Response(404)


def task_answer(task_id: str, status: str, results: object = None) -> dict[str, object]:
    usage = {"consumeCoins": "50", "taskCostTime": "4"} if status == "SUCCESS" else None
    answer = {
        "taskId": task_id,
        "status": status,
        "errorCode": "",
        "errorMessage": "",
        "results": results,
        "clientId": "",
        "promptTips": "",
    }
    return {**answer, "usage": usage} if usage else answer


def price_error(code: str, message: str) -> dict[str, object]:
    return {"errorCode": code, "errorMessage": message, "estimatedPrice": None}


@pytest.fixture
def cloud() -> FakeCloud:
    return FakeCloud()


@pytest.fixture
def a(tmp_path: Path, cloud: FakeCloud) -> Iterator[tuple[Node, UpstreamEngine]]:
    front = Node(tmp_path / "a", engine="upstream", upstream_url=CLOUD, upstream_keys="cloud-key-1")
    engine = UpstreamEngine(
        front.runtime.settings,
        front.runtime.db,
        client=lambda key: Client(CLOUD, key, transport=httpx.MockTransport(cloud)),
    )
    front.app.state.service.upstream_prices = UpstreamPrices(
        front.runtime.settings,
        client=Client(CLOUD, "cloud-key-1", transport=httpx.MockTransport(cloud)),
    )
    front.start_http()
    front.start_worker(engine=engine)
    try:
        yield front, engine
    finally:
        front.close()


def test_a_lost_submit_answer_on_runninghub_is_never_sent_twice(
    a: tuple[Node, UpstreamEngine], cloud: FakeCloud
) -> None:
    front, engine = a

    def cut(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset after the request was sent", request=request)

    cloud.on_submit = cut
    assert not engine.idempotent  # RunningHub does not honour Idempotency-Key
    with front.client(front.new_key()) as http:
        task_id = http.post(PRO, json=body(upload(http, png()))).json()["taskId"]
        done = wait_until_done(http, task_id)
    assert len(cloud.submits) == 1
    assert done["status"] == "FAILED"
    assert "paid twice" in done["errorMessage"]
    assert done["usage"]["consumeCoins"] == "0"  # refunded on A


def test_runninghub_codes_reach_the_user_unchanged(
    a: tuple[Node, UpstreamEngine], cloud: FakeCloud
) -> None:
    front, engine = a
    cloud.on_submit = lambda request: httpx.Response(
        200,
        json={"taskId": "", "status": "FAILED", "errorCode": "1014", "errorMessage": DENIED},
    )
    with front.client(front.new_key()) as http:
        done = wait_until_done(
            http, http.post(PRO, json=body(upload(http, png()))).json()["taskId"]
        )
    assert (done["status"], done["errorCode"], done["errorMessage"]) == ("FAILED", "1014", DENIED)
    assert len(cloud.submits) == 1
    (key,) = engine.pool.states()
    assert not key.out_of_rotation  # a model the key may not use says nothing about the key
    # The media A holds was uploaded to the cloud first; the cloud got its own link.
    assert cloud.submits[0]["firstImageUrl"] == f"{CLOUD}/in.png"


def test_a_model_outside_the_catalogue_passes_through_verbatim(
    a: tuple[Node, UpstreamEngine], cloud: FakeCloud
) -> None:
    front, _engine = a
    request = {"prompt": "make it rain", "imageUrls": ["https://example.com/a.png"], "n": 2}
    with front.client(front.new_key(coins=1000)) as http:
        price = http.post(f"/openapi/v2/price-preview/{OTHER}", json=request).json()
        assert (price["errorCode"], price["estimatedPrice"]) == ("", 0.5)
        refused = http.post(f"/openapi/v2/{OTHER}", json={"prompt": "no images"}).json()
        assert (refused["status"], refused["errorCode"]) == ("FAILED", "1007")
        assert refused["errorMessage"] == "imageUrls is required"  # the cloud's own words
        task_id = http.post(f"/openapi/v2/{OTHER}", json=request).json()["taskId"]
        done = wait_until_done(http, task_id)
        assert done["status"] == "SUCCESS", done
        (result,) = done["results"]
        assert result["url"].startswith(front.url) and result["outputType"] == "png"
        assert httpx.get(result["url"]).content == png(320, 240)  # a copy kept by reelgate
        assert done["usage"]["consumeCoins"] == "50"  # what the cloud charged
        account = http.post("/uc/openapi/accountStatus", json={}).json()["data"]
        assert account["remainCoins"] == "950"
    assert cloud.submits == [request]  # sent exactly as received, once
