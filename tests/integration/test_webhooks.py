"""Webhooks end to end: a real worker, the real API over HTTP, and a real receiver on loopback.

Deliveries are checked with the reference Standard Webhooks library, not only with our own
helper; a receiver that is down, failing or moved is a server the test starts and stops.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from standardwebhooks import Webhook

import reelgate.client
from reelgate.config import Settings, WebhookSettings
from reelgate.core.status import TaskStatus
from reelgate.runtime import Runtime
from reelgate.store import queue, repo
from reelgate.store.tables import WebhookDelivery, utcnow
from reelgate.worker.worker import Worker
from tests.conftest import LiveServer, free_port, make_settings, new_key, running_worker
from tests.integration.test_end_to_end import data_uri, png_bytes, wait
from tests.integration.webhook_receiver import Receiver

I2V = "/openapi/v2/kling-video-o3-std/image-to-video"
FAST = WebhookSettings(
    timeout_seconds=2,
    first_retry_seconds=0.05,
    max_retry_interval_seconds=0.2,
    poll_seconds=0.02,
)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path / "data", db_url, webhooks=FAST)


@pytest.fixture
def worker(runtime: Runtime) -> Iterator[Worker]:
    with running_worker(runtime, concurrency=2) as started:
        yield started


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as started:
        yield started


def request(webhook_url: str | None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt": "pan left",
        "firstImageUrl": data_uri(png_bytes(320, 320)),
        "duration": 3,
        "sound": False,
        **extra,
    }
    if webhook_url is not None:
        body["webhookUrl"] = webhook_url
    return body


def secret_of(http: httpx.Client) -> str:
    answer = http.get("/reelgate/v1/webhook-secret")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["webhookSecret"])


def detail(http: httpx.Client, task_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = http.post(
        "/task/openapi/getWebhookDetail", json={"taskId": task_id}
    ).json()
    return answer


def wait_detail(
    http: httpx.Client, task_id: str, until: Any, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = detail(http, task_id)
        if last["code"] == 0 and until(last["data"]):
            return dict(last["data"])
        time.sleep(0.05)
    raise AssertionError(f"webhook detail never matched: {last}")


def test_a_finished_task_is_delivered_once_signed_with_the_query_object(
    http: httpx.Client, worker: Worker, receiver: Receiver
) -> None:
    submitted = http.post(I2V, json=request(receiver.url)).json()
    assert submitted["status"] == "QUEUED" and "webhookUrl" not in submitted
    task = wait(http, submitted["taskId"])
    assert task["status"] == "SUCCESS", task
    (delivery,) = receiver.wait_for(1)
    assert delivery.path == "/hooks/reelgate"
    assert delivery.headers["content-type"] == "application/json"

    # The reference library verifies it with the secret the key's owner can fetch.
    secret = secret_of(http)
    payload = Webhook(secret).verify(delivery.body, delivery.headers)
    assert payload["event"] == "TASK_END"
    assert payload["taskId"] == submitted["taskId"]
    event_data = json.loads(payload["eventData"])
    assert event_data["taskId"] == submitted["taskId"]
    assert event_data["status"] == "SUCCESS"
    assert event_data["usage"] == task["usage"]
    (result,) = event_data["results"]
    assert httpx.get(result["url"]).content[4:8] == b"ftyp"  # a real MP4 behind the link
    # The SDK's helper agrees, and parses the task object.
    event = reelgate.client.verify_webhook(secret, delivery.headers, delivery.body)
    assert event.task().status == "SUCCESS"

    shown = wait_detail(http, submitted["taskId"], lambda d: d["callbackStatus"] == "SUCCESS")
    assert shown["id"] == delivery.webhook_id
    assert shown["webhookUrl"] == receiver.url
    assert shown["retryCount"] == 0
    assert shown["eventData"] == payload["eventData"]
    assert shown["callbackResponse"].startswith("HTTP 200")
    assert "*" in shown["userApiKey"] and len(shown["userApiKey"]) < 32
    time.sleep(0.5)
    assert len(receiver.requests) == 1  # delivered means never sent again


def test_a_receiver_down_then_up_gets_the_event_exactly_once(
    http: httpx.Client, worker: Worker
) -> None:
    receiver = Receiver()  # its port is chosen but nothing listens there yet
    submitted = http.post(I2V, json=request(receiver.url)).json()
    assert wait(http, submitted["taskId"])["status"] == "SUCCESS"
    down = wait_detail(http, submitted["taskId"], lambda d: d["retryCount"] >= 2)
    assert down["callbackStatus"] == "RETRYING"
    assert "could not connect" in down["callbackResponse"]
    with receiver:
        receiver.wait_for(1)
        up = wait_detail(http, submitted["taskId"], lambda d: d["callbackStatus"] == "SUCCESS")
        time.sleep(0.5)
    assert len(receiver.unique()) == 1
    assert len(receiver.requests) == 1
    assert up["retryCount"] >= 2


def test_every_attempt_sends_the_same_id_and_body(
    http: httpx.Client, worker: Worker, receiver: Receiver
) -> None:
    receiver.status = 500
    submitted = http.post(I2V, json=request(receiver.url)).json()
    receiver.wait_for(3)
    receiver.status = 204
    wait_detail(http, submitted["taskId"], lambda d: d["callbackStatus"] == "SUCCESS")
    attempts = list(receiver.requests)
    assert len(attempts) >= 4
    assert {a.webhook_id for a in attempts} == {attempts[0].webhook_id}
    assert {a.body for a in attempts} == {attempts[0].body}
    assert len(receiver.unique()) == 1


def test_retry_webhook_redelivers_to_a_new_url(
    http: httpx.Client, worker: Worker, receiver: Receiver
) -> None:
    submitted = http.post(I2V, json=request(receiver.url)).json()
    (first,) = receiver.wait_for(1)
    shown = wait_detail(http, submitted["taskId"], lambda d: d["callbackStatus"] == "SUCCESS")
    with Receiver() as moved:
        answer = http.post(
            "/task/openapi/retryWebhook", json={"webhookId": shown["id"], "webhookUrl": moved.url}
        ).json()
        assert answer == {"code": 0, "msg": "", "data": None}
        (again,) = moved.wait_for(1)
    assert again.webhook_id == first.webhook_id  # receivers can tell it is the same event
    assert json.loads(again.body)["taskId"] == submitted["taskId"]
    Webhook(secret_of(http)).verify(again.body, again.headers)
    assert len(receiver.requests) == 1
    after = wait_detail(http, submitted["taskId"], lambda d: d["callbackStatus"] == "SUCCESS")
    assert after["webhookUrl"] == moved.url


def test_a_cancelled_task_sends_its_cancel_event(
    http: httpx.Client, runtime: Runtime, receiver: Receiver
) -> None:
    submitted = http.post(I2V, json=request(receiver.url)).json()
    assert http.post("/task/openapi/cancel", json={"taskId": submitted["taskId"]}).json() == {
        "code": 0,
        "msg": "success",
        "data": None,
    }
    # No worker runs: one delivery round by hand.
    from reelgate.webhooks.dispatcher import WebhookDispatcher

    dispatcher = WebhookDispatcher(runtime)
    try:
        assert dispatcher.deliver_due() == 1
    finally:
        dispatcher.close()
    (delivery,) = receiver.requests
    event = json.loads(json.loads(delivery.body)["eventData"])
    assert event["status"] == "CANCEL"
    assert event["usage"]["consumeCoins"] == "0"


def test_no_webhook_event_is_answered_with_code_1(http: httpx.Client, worker: Worker) -> None:
    submitted = http.post(I2V, json=request(None)).json()
    wait(http, submitted["taskId"])
    answer = detail(http, submitted["taskId"])
    assert answer["code"] == 1 and answer["msg"] == "webhook event not exists"
    unknown = http.post("/task/openapi/retryWebhook", json={"webhookId": "1904444422778503169"})
    assert unknown.json()["code"] == 1


def test_retries_stop_after_the_window_and_retry_webhook_starts_a_new_round(
    tmp_path: Path, db_url: str
) -> None:
    short = FAST.model_copy(update={"retry_for_seconds": 0.6})
    runtime = Runtime.open(make_settings(tmp_path / "data", db_url, webhooks=short))
    key = new_key(runtime)
    receiver = Receiver()
    try:
        with (
            LiveServer(runtime) as server,
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as http,
        ):
            submitted = http.post(I2V, json=request(receiver.url)).json()
            http.post("/task/openapi/cancel", json={"taskId": submitted["taskId"]})
            from reelgate.webhooks.dispatcher import WebhookDispatcher

            dispatcher = WebhookDispatcher(runtime)
            try:
                deadline = time.monotonic() + 20
                while detail(http, submitted["taskId"])["data"]["callbackStatus"] != "FAILED":
                    assert time.monotonic() < deadline
                    dispatcher.deliver_due()
                    time.sleep(0.05)
                failed = detail(http, submitted["taskId"])["data"]
                assert failed["retryCount"] >= 1
                with receiver:
                    http.post("/task/openapi/retryWebhook", json={"webhookId": failed["id"]})
                    assert dispatcher.deliver_due() == 1
                    assert len(receiver.requests) == 1
            finally:
                dispatcher.close()
            assert detail(http, submitted["taskId"])["data"]["callbackStatus"] == "SUCCESS"
    finally:
        runtime.close()


def test_the_event_commits_with_the_transition_or_not_at_all(runtime: Runtime) -> None:
    key = new_key(runtime)
    with runtime.db.read() as session:
        key_id = repo.find_key(session, key).id  # type: ignore[union-attr]
    with runtime.db.write() as session:
        repo.insert_task(
            session,
            id=1,
            api_key_id=key_id,
            model="kling-video-o3-std/image-to-video",
            params={},
            status="QUEUED",
            max_attempts=3,
            reserved_coins=10,
            webhook_url="http://127.0.0.1:9/hook",
        )

    class Abort(Exception):
        pass

    with pytest.raises(Abort), runtime.db.write() as session:
        assert queue.cancel(session, 1, expected=TaskStatus.QUEUED, actor="test")
        raise Abort
    with runtime.db.read() as session:
        assert session.scalars(select(WebhookDelivery)).all() == []
        assert queue.task_status(session, 1) is TaskStatus.QUEUED
    with runtime.db.write() as session:
        assert queue.cancel(session, 1, expected=TaskStatus.QUEUED, actor="test")
    with runtime.db.read() as session:
        (event,) = session.scalars(select(WebhookDelivery)).all()
        assert (event.task_id, event.status, event.url) == (1, "PENDING", "http://127.0.0.1:9/hook")


# -- the webhook URL's address rules, checked at submit ----------------------------------------


@pytest.fixture
def guarded_http(tmp_path: Path, db_url: str) -> Iterator[tuple[httpx.Client, Runtime]]:
    runtime = Runtime.open(make_settings(tmp_path / "data", db_url, allow_private_networks=False))
    key = new_key(runtime)
    try:
        with (
            LiveServer(runtime) as server,
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as http,
        ):
            yield http, runtime
    finally:
        runtime.close()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:9/hook", "non-public"),
        ("http://[::1]:9/hook", "non-public"),
        ("http://169.254.169.254/latest/meta-data", "non-public"),
        ("http://hooks.internal.example/hook", "non-public"),  # resolves to 10.0.0.7 (stubbed)
        ("ftp://example.com/hook", "http or https"),
        ("http://user:secret@example.com/hook", "user name"),
        ("not a url", "http or https"),
    ],
)
def test_a_webhook_url_that_may_not_be_reached_is_refused_at_submit(
    guarded_http: tuple[httpx.Client, Runtime],
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    why: str,
) -> None:
    real = socket.getaddrinfo

    def resolver(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        # Names resolve only here: the test never reaches a resolver, nor any non-loopback host.
        if host in ("hooks.internal.example", "example.com"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    http, _runtime = guarded_http
    before = http.post("/uc/openapi/accountStatus", json={}).json()["data"]
    answer = http.post(I2V, json=request(url)).json()
    assert answer["status"] == "FAILED" and answer["taskId"] == ""
    assert answer["errorCode"] == "1001", answer
    assert why in answer["errorMessage"]
    after = http.post("/uc/openapi/accountStatus", json={}).json()["data"]
    # Nothing held, no task written.
    assert (after["remainCoins"], after["currentTaskCounts"]) == (before["remainCoins"], "0")


def test_a_webhook_url_that_is_not_a_string_is_invalid(
    guarded_http: tuple[httpx.Client, Runtime],
) -> None:
    http, _runtime = guarded_http
    answer = http.post(I2V, json=request(None, webhookUrl=["http://example.com"])).json()
    assert answer["errorCode"] == "1007"


# -- fault injection: a failing or slow webhook -------------------------------------------------


def set_faults(runtime: Runtime, api_key: str, **faults: Any) -> None:
    from reelgate.core.faults import Faults
    from reelgate.store.tables import ApiKey

    with runtime.db.write() as session:
        key = repo.find_key(session, api_key)
        assert key is not None
        session.get_one(ApiKey, key.id).faults = Faults(**faults).to_stored()


def cancelled_task(http: httpx.Client, url: str) -> str:
    task_id = str(http.post(I2V, json=request(url)).json()["taskId"])
    assert http.post("/task/openapi/cancel", json={"taskId": task_id}).json()["code"] == 0
    return task_id


def test_an_injected_webhook_failure_sends_nothing_and_retries(
    http: httpx.Client, runtime: Runtime, api_key: str, receiver: Receiver
) -> None:
    from reelgate.webhooks.dispatcher import WebhookDispatcher

    set_faults(runtime, api_key, webhook_fail_rate=1.0)
    task_id = cancelled_task(http, receiver.url)
    dispatcher = WebhookDispatcher(runtime)
    try:
        deadline = time.monotonic() + 20
        while detail(http, task_id)["data"]["retryCount"] < 2:
            assert time.monotonic() < deadline
            dispatcher.deliver_due()
            time.sleep(0.05)
    finally:
        dispatcher.close()
    shown = detail(http, task_id)["data"]
    assert shown["callbackStatus"] == "RETRYING"
    assert "fault injection" in shown["callbackResponse"]
    assert receiver.requests == []
    # Off again: the next attempt is delivered.
    set_faults(runtime, api_key)
    with runtime.db.write() as session:
        session.execute(update(WebhookDelivery).values(next_attempt_at=utcnow()))
    dispatcher = WebhookDispatcher(runtime)
    try:
        assert dispatcher.deliver_due() == 1
    finally:
        dispatcher.close()
    assert len(receiver.requests) == 1


def test_an_injected_webhook_delay_holds_the_event_back(
    http: httpx.Client, runtime: Runtime, api_key: str, receiver: Receiver
) -> None:
    from reelgate.webhooks.dispatcher import WebhookDispatcher

    set_faults(runtime, api_key, webhook_delay_seconds=1.5)
    started = time.monotonic()
    task_id = cancelled_task(http, receiver.url)
    dispatcher = WebhookDispatcher(runtime)
    try:
        while not receiver.requests:
            assert time.monotonic() - started < 20
            dispatcher.deliver_due()
            time.sleep(0.05)
    finally:
        dispatcher.close()
    assert time.monotonic() - started >= 1.5
    shown = detail(http, task_id)["data"]
    assert (shown["callbackStatus"], shown["retryCount"]) == ("SUCCESS", 0)


def test_the_documented_receiver_processes_each_event_once_and_refuses_forgeries(
    http: httpx.Client, worker: Worker
) -> None:
    """docs/examples/webhook_receiver.py, run as a user runs it, receiving real deliveries."""
    port = free_port()
    env = {**os.environ, "REELGATE_WEBHOOK_SECRET": secret_of(http)}
    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "webhook_receiver.py"
    proc = subprocess.Popen(
        [sys.executable, str(example), str(port)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/"
        submitted = http.post(I2V, json=request(url)).json()
        shown = wait_detail(http, submitted["taskId"], lambda d: d["callbackStatus"] == "SUCCESS")
        # Delivered again (same id): processed once. A forgery: refused.
        http.post("/task/openapi/retryWebhook", json={"webhookId": shown["id"]})
        wait_detail(http, submitted["taskId"], lambda d: d["callbackStatus"] == "SUCCESS")
        forged = httpx.post(
            url,
            content=b'{"event":"TASK_END","taskId":"1","eventData":"{}"}',
            headers={"webhook-id": "x", "webhook-timestamp": "1", "webhook-signature": "v1,x"},
        )
        assert forged.status_code == 400
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=10)
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith(f"task {submitted['taskId']} ended SUCCESS: ['http")


def test_the_sdk_sends_webhook_url_and_reads_and_resends_the_event(
    live_server: LiveServer, api_key: str, worker: Worker, receiver: Receiver
) -> None:
    with reelgate.client.Client(live_server.url, api_key) as client:
        task = client.image_to_video(
            "pan left",
            png_bytes(320, 320),
            duration=3,
            sound=False,
            tier="std",
            webhook_url=receiver.url,
        )
        assert task.wait().status == "SUCCESS"
        (delivery,) = receiver.wait_for(1)
        event = reelgate.client.verify_webhook(
            client.webhook_secret(), delivery.headers, delivery.body
        )
        assert event.task_id == task.id
        deadline = time.monotonic() + 30
        while (shown := client.webhook_detail(task.id)).callback_status != "SUCCESS":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert (shown.id, shown.webhook_url) == (delivery.webhook_id, receiver.url)
        client.retry_webhook(shown.id)
        receiver.wait_for(2)
        plain = client.image_to_video("pan", png_bytes(320, 320), duration=3, tier="std")
        plain.wait()
        with pytest.raises(reelgate.client.APIError) as refused:
            client.webhook_detail(plain.id)
        assert refused.value.code == "1"
