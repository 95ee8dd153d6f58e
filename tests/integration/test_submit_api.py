"""Submitting tasks over real HTTP: wire shape, validation codes, auth, coins, idempotency."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from reelgate.core.ids import is_task_id
from reelgate.runtime import Runtime
from reelgate.store.tables import ApiKey, Task, TaskEvent
from tests.conftest import LiveServer, new_key

I2V = "/openapi/v2/kling-video-o3-pro/image-to-video"
I2V_STD = "/openapi/v2/kling-video-o3-std/image-to-video"
EDIT = "/openapi/v2/kling-video-o3-pro/video-edit"
EDIT_STD = "/openapi/v2/kling-video-o3-std/video-edit"

FIRST = "https://example.com/first.png"


def i2v(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt": "a lantern street", "firstImageUrl": FIRST, "duration": 5}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def edit(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt": "make it sepia", "videoUrl": "https://example.com/in.mp4"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def test_submit_answers_the_flat_v2_object(http: httpx.Client) -> None:
    answer = http.post(I2V, json=i2v())
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {
        "taskId",
        "status",
        "errorCode",
        "errorMessage",
        "results",
        "clientId",
        "promptTips",
    }
    assert is_task_id(body["taskId"])
    assert body["status"] == "QUEUED"
    assert (body["errorCode"], body["errorMessage"], body["results"]) == ("", "", None)


def test_task_ids_are_time_ordered_and_unique(http: httpx.Client) -> None:
    ids = [http.post(I2V_STD, json=i2v()).json()["taskId"] for _ in range(5)]
    assert len(set(ids)) == 5
    assert ids == sorted(ids)


@pytest.mark.parametrize("path", [I2V, I2V_STD, EDIT, EDIT_STD])
def test_every_model_endpoint_accepts_its_documented_body(http: httpx.Client, path: str) -> None:
    body = (
        edit(imageUrls=[FIRST] * 4, keepOriginalSound=False)
        if "edit" in path
        else i2v(
            lastImageUrl=FIRST,
            duration=15,
            sound=False,
            multiShot=True,
            shotType="customize",
            multiPrompt=[
                {"index": 1, "prompt": "a", "duration": "5"},
                {"prompt": "b", "duration": 10},
            ],
        )
    )
    answer = http.post(path, json=body).json()
    assert answer["errorCode"] == "", answer


def test_unknown_fields_are_ignored_and_null_last_image_is_accepted(http: httpx.Client) -> None:
    answer = http.post(I2V, json=i2v(lastImageUrl=None, somethingNew=1, aspectRatio="16:9")).json()
    assert answer["errorCode"] == ""


def test_multi_prompt_accepts_plain_strings(http: httpx.Client) -> None:
    answer = http.post(
        I2V, json=i2v(multiShot=True, multiPrompt=["a", "b", "c"], duration=9)
    ).json()
    assert answer["errorCode"] == ""


INVALID_BODIES = [
    ("prompt missing", I2V, i2v(prompt=...), "prompt"),
    ("prompt empty", I2V, i2v(prompt=""), "prompt"),
    ("prompt too long", I2V, i2v(prompt="x" * 2501), "prompt"),
    ("prompt not a string", I2V, i2v(prompt=5), "prompt"),
    ("first image missing", I2V, i2v(firstImageUrl=...), "firstImageUrl"),
    ("first image not a string", I2V, i2v(firstImageUrl=["a"]), "firstImageUrl"),
    ("duration below 3", I2V, i2v(duration=2), "duration"),
    ("duration above 15", I2V, i2v(duration=16), "duration"),
    ("duration as string", I2V, i2v(duration="5"), "duration"),
    ("duration as float", I2V, i2v(duration=5.5), "duration"),
    ("sound as string", I2V, i2v(sound="true"), "sound"),
    ("multiShot as int", I2V, i2v(multiShot=1), "multiShot"),
    ("shotType not in enum", I2V, i2v(shotType="auto"), "shotType"),
    ("customize without multiPrompt", I2V, i2v(multiShot=True), "multiPrompt"),
    ("too many shots", I2V, i2v(multiShot=True, multiPrompt=["a"] * 7, duration=10), "at most 6"),
    (
        "shot durations do not add up",
        I2V,
        i2v(
            multiShot=True,
            multiPrompt=[{"prompt": "a", "duration": "2"}, {"prompt": "b", "duration": "2"}],
        ),
        "add up",
    ),
    (
        "shot duration not a number",
        I2V,
        i2v(multiShot=True, multiPrompt=[{"prompt": "a", "duration": "five"}]),
        "whole number",
    ),
    ("video missing", EDIT, edit(videoUrl=...), "videoUrl"),
    ("five reference images", EDIT, edit(imageUrls=[FIRST] * 5), "imageUrls"),
    ("reference images not a list", EDIT, edit(imageUrls=FIRST), "imageUrls"),
    ("keepOriginalSound as string", EDIT_STD, edit(keepOriginalSound="yes"), "keepOriginalSound"),
]


@pytest.mark.parametrize(
    ("case", "path", "body", "names"), INVALID_BODIES, ids=[c[0] for c in INVALID_BODIES]
)
def test_invalid_parameters_answer_1007_naming_the_rule(
    http: httpx.Client, case: str, path: str, body: dict[str, Any], names: str
) -> None:
    answer = http.post(path, json=body)
    assert answer.status_code == 200
    payload = answer.json()
    assert payload["errorCode"] == "1007", case
    assert payload["errorMessage"].startswith("Invalid parameters, please check your input")
    assert names in payload["errorMessage"]
    assert payload["taskId"] == ""


def test_body_that_is_not_json_answers_1007(http: httpx.Client) -> None:
    answer = http.post(I2V, content=b"{not json", headers={"Content-Type": "application/json"})
    assert answer.json()["errorCode"] == "1007"


def test_std_tier_ignores_element_list_and_pro_accepts_it(http: httpx.Client) -> None:
    assert http.post(I2V, json=i2v(elementList=["el-1", {"id": "el-2"}])).json()["errorCode"] == ""
    assert http.post(I2V_STD, json=i2v(elementList=["el-1"])).json()["errorCode"] == ""
    assert http.post(I2V, json=i2v(elementList="el-1")).json()["errorCode"] == "1007"


def test_unknown_model_answers_1007(http: httpx.Client) -> None:
    answer = http.post("/openapi/v2/kling-video-o9/image-to-video", json=i2v()).json()
    assert answer["errorCode"] == "1007"
    assert "unknown model" in answer["errorMessage"]


def test_wrong_http_method_answers_1009(http: httpx.Client) -> None:
    assert http.get("/openapi/v2/query").json()["errorCode"] == "1009"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}]
)
def test_missing_or_wrong_key_answers_1002(
    live_server: LiveServer, headers: dict[str, str]
) -> None:
    answer = httpx.post(live_server.url + I2V, json=i2v(), headers=headers)
    assert answer.status_code == 200
    assert answer.json()["errorCode"] == "1002"
    query = httpx.post(live_server.url + "/openapi/v2/query", json={"taskId": "1"}, headers=headers)
    assert query.json()["errorCode"] == "1002"


def test_disabled_key_answers_1002(http: httpx.Client, runtime: Runtime, api_key: str) -> None:
    from reelgate.service import Service

    assert Service(runtime).disable_key(api_key).key.disabled
    assert http.post(I2V, json=i2v()).json()["errorCode"] == "1002"


def test_query_returns_the_submitted_task(http: httpx.Client) -> None:
    task_id = http.post(I2V, json=i2v()).json()["taskId"]
    answer = http.post("/openapi/v2/query", json={"taskId": task_id})
    assert answer.json()["taskId"] == task_id
    assert answer.json()["status"] == "QUEUED"
    assert answer.headers["X-Reelgate-Poll-After"] == "1"


def test_another_keys_task_is_not_found(
    http: httpx.Client, runtime: Runtime, live_server: LiveServer
) -> None:
    task_id = http.post(I2V, json=i2v()).json()["taskId"]
    other = {"Authorization": f"Bearer {new_key(runtime)}"}
    answer = httpx.post(
        live_server.url + "/openapi/v2/query", json={"taskId": task_id}, headers=other
    )
    assert answer.json()["errorCode"] == "1004"
    assert answer.json()["taskId"] == task_id
    cancel = httpx.post(
        live_server.url + "/task/openapi/cancel",
        json={"apiKey": other["Authorization"][7:], "taskId": task_id},
    )
    assert cancel.json()["code"] == 807
    assert http.post("/openapi/v2/query", json={"taskId": task_id}).json()["status"] == "QUEUED"


@pytest.mark.parametrize("task_id", ["1234", "not-a-number", "9999999999999999999", 42])
def test_unknown_task_ids_answer_1004(http: httpx.Client, task_id: object) -> None:
    assert http.post("/openapi/v2/query", json={"taskId": task_id}).json()["errorCode"] == "1004"


def test_missing_task_id_answers_1007(http: httpx.Client) -> None:
    assert http.post("/openapi/v2/query", json={}).json()["errorCode"] == "1007"


def test_price_preview_validates_without_charging(http: httpx.Client) -> None:
    before = http.post("/uc/openapi/accountStatus", json={}).json()["data"]["remainCoins"]
    answer = http.post(
        "/openapi/v2/price-preview/kling-video-o3-pro/image-to-video", json=i2v(duration=10)
    ).json()
    assert answer["errorCode"] == ""
    assert answer["estimatedPrice"] == 8.7  # 10 s × ¥0.87 (pro, with sound)
    assert answer["currency"] == "CNY"
    silent = http.post(
        "/openapi/v2/price-preview/kling-video-o3-std/image-to-video", json=i2v(sound=False)
    ).json()
    assert silent["estimatedPrice"] == 2.6  # 5 s × ¥0.52
    bad = http.post(
        "/openapi/v2/price-preview/kling-video-o3-pro/image-to-video", json=i2v(duration=20)
    ).json()
    assert bad["errorCode"] == "1007"
    assert http.post("/uc/openapi/accountStatus", json={}).json()["data"]["remainCoins"] == before


def test_submit_reserves_the_documented_price(http: httpx.Client) -> None:
    def coins() -> int:
        return int(http.post("/uc/openapi/accountStatus", json={}).json()["data"]["remainCoins"])

    start = coins()
    http.post(I2V, json=i2v(duration=10, sound=True))
    assert start - coins() == 870
    http.post(I2V_STD, json=i2v(duration=4, sound=False))
    assert start - coins() == 870 + 4 * 52
    http.post(EDIT, json=edit())
    assert start - coins() == 870 + 208 + 10 * 108  # edits hold the longest clip's price


def test_insufficient_coins_gets_the_balance_error_and_no_task(
    runtime: Runtime, live_server: LiveServer
) -> None:
    key = new_key(runtime, coins=300)
    headers = {"Authorization": f"Bearer {key}"}
    answer = httpx.post(live_server.url + I2V, json=i2v(duration=5), headers=headers).json()
    assert answer["errorCode"] == "416"
    assert "435" in answer["errorMessage"] and "300" in answer["errorMessage"]
    assert answer["taskId"] == ""
    status = httpx.get(live_server.url + "/openapi/v2/queue/status", headers=headers).json()
    assert status["data"]["totalCurrentTasks"] == 0
    account = httpx.post(live_server.url + "/uc/openapi/accountStatus", json={"apikey": key}).json()
    assert account["data"]["remainCoins"] == "300"
    cheap = httpx.post(
        live_server.url + I2V_STD, json=i2v(duration=5, sound=False), headers=headers
    ).json()
    assert cheap["errorCode"] == ""  # 260 coins fit


def test_queue_cap_answers_421(runtime: Runtime, live_server: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {new_key(runtime, queue_cap=2)}"}
    codes = [
        httpx.post(live_server.url + I2V, json=i2v(), headers=headers).json()["errorCode"]
        for _ in range(3)
    ]
    assert codes == ["", "", "421"]


def test_a_full_queue_is_told_before_a_short_balance_and_a_refusal_leaves_nothing(
    runtime: Runtime, live_server: LiveServer
) -> None:
    # Coins for exactly two tasks and room for two: the third submit is refused for the queue,
    # as it was before the coins were counted, and leaves no task, event or charge behind.
    key = new_key(runtime, queue_cap=2, coins=2 * 435)
    headers = {"Authorization": f"Bearer {key}"}
    codes = [
        httpx.post(live_server.url + I2V, json=i2v(), headers=headers).json()["errorCode"]
        for _ in range(3)
    ]
    assert codes == ["", "", "421"]
    account = httpx.post(live_server.url + "/uc/openapi/accountStatus", json={"apikey": key})
    assert account.json()["data"]["remainCoins"] == "0"
    with runtime.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Task)) == 2
        assert session.scalar(select(func.count()).select_from(TaskEvent)) == 2
    # With room in the queue again, the short balance is what is told.
    with runtime.db.write() as session:
        session.execute(update(ApiKey).values(queue_cap=5))
    refused = httpx.post(live_server.url + I2V, json=i2v(), headers=headers).json()
    assert refused["errorCode"] == "416"


def test_idempotency_key_returns_the_first_task(http: httpx.Client) -> None:
    headers = {"Idempotency-Key": "order-17"}
    first = http.post(I2V, json=i2v(), headers=headers).json()
    again = http.post(I2V, json=i2v(), headers=headers).json()
    assert first["taskId"] == again["taskId"]
    assert http.get("/openapi/v2/queue/status").json()["data"]["queuedCount"] == 1
    reused = http.post(I2V, json=i2v(duration=6), headers=headers).json()
    assert reused["errorCode"] == "1007"
    assert "Idempotency-Key" in reused["errorMessage"]


def test_account_and_queue_status(http: httpx.Client, api_key: str) -> None:
    http.post(I2V, json=i2v())
    account = http.post("/uc/openapi/accountStatus", json={"apikey": api_key}).json()
    assert account["code"] == 0
    assert account["data"] == {
        "remainCoins": str(100_000 - 435),
        "currentTaskCounts": "1",
        "remainMoney": f"{(100_000 - 435) / 100:.2f}",
        "currency": "CNY",
        "apiType": "SHARED",
    }
    queue = http.get("/openapi/v2/queue/status").json()
    assert queue["code"] == 0
    assert queue["data"]["concurrentLimit"] == 2
    assert queue["data"]["queuedCount"] == 1
    assert queue["data"]["runningCount"] == 0


def test_v1_endpoints_take_the_key_from_the_body(
    live_server: LiveServer, api_key: str, http: httpx.Client
) -> None:
    task_id = http.post(I2V, json=i2v()).json()["taskId"]
    url = live_server.url
    assert httpx.post(
        url + "/task/openapi/status", json={"apiKey": api_key, "taskId": task_id}
    ).json() == {
        "code": 0,
        "msg": "",
        "data": "QUEUED",
    }
    outputs = httpx.post(
        url + "/task/openapi/outputs", json={"apiKey": api_key, "taskId": task_id}
    ).json()
    assert outputs == {"code": 813, "msg": "APIKEY_TASK_IS_QUEUED", "data": None}
    wrong = httpx.post(
        url + "/task/openapi/status", json={"apiKey": "wrong", "taskId": task_id}
    ).json()
    assert (wrong["code"], wrong["msg"]) == (802, "APIKEY_UNAUTHORIZED")
    missing = httpx.post(url + "/uc/openapi/accountStatus", json={}).json()
    assert missing["code"] == 802
    unknown = httpx.post(
        url + "/task/openapi/status", json={"apiKey": api_key, "taskId": "1"}
    ).json()
    assert unknown["code"] == 807


def test_cancel_of_a_queued_task_is_immediate_and_refunds(
    http: httpx.Client, api_key: str, live_server: LiveServer
) -> None:
    before = http.post("/uc/openapi/accountStatus", json={}).json()["data"]["remainCoins"]
    task_id = http.post(I2V, json=i2v()).json()["taskId"]
    cancel = httpx.post(
        live_server.url + "/task/openapi/cancel", json={"apiKey": api_key, "taskId": task_id}
    )
    assert cancel.json() == {"code": 0, "msg": "success", "data": None}
    task = http.post("/openapi/v2/query", json={"taskId": task_id}).json()
    assert task["status"] == "CANCEL"
    assert task["usage"]["consumeCoins"] == "0"
    assert http.post("/uc/openapi/accountStatus", json={}).json()["data"]["remainCoins"] == before
    again = httpx.post(
        live_server.url + "/task/openapi/cancel", json={"apiKey": api_key, "taskId": task_id}
    )
    assert again.json() == {"code": 0, "msg": "success", "data": None}  # idempotent


def test_health_and_metrics(live_server: LiveServer, http: httpx.Client) -> None:
    http.post(I2V, json=i2v())
    assert httpx.get(live_server.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(live_server.url + "/readyz").json() == {"status": "ready"}
    metrics = httpx.get(live_server.url + "/metrics").text
    assert (
        'reelgate_tasks_submitted_total{model="kling-video-o3-pro/image-to-video"} 1.0' in metrics
    )
