"""The dashboard's own endpoints over real HTTP, on SQLite and PostgreSQL: what each key sees, the
admin's key management, the live stream of task changes, and the pages themselves."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from reelgate.api.dashboard import api as dashboard_api
from reelgate.dashboard import Dashboard
from reelgate.runtime import Runtime
from reelgate.store import queue, repo
from reelgate.store.tables import ApiKey, Task, utcnow
from tests.conftest import LiveServer, new_key

PRO = "kling-video-o3-pro/image-to-video"
STD = "kling-video-o3-std/image-to-video"
BODY = {"prompt": "a lantern street", "firstImageUrl": "https://example.com/a.png", "duration": 3}


def admin_key(runtime: Runtime, *, coins: int = 100_000) -> str:
    with runtime.db.write() as session:
        return repo.create_key(
            session, name="ops", coins=coins, concurrency=2, queue_cap=100, admin=True
        ).api_key


def client(server: LiveServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


@pytest.fixture
def admin(runtime: Runtime, live_server: LiveServer) -> Iterator[httpx.Client]:
    with client(live_server, admin_key(runtime)) as http:
        yield http


def submit(http: httpx.Client, model: str = PRO, **body: Any) -> str:
    answer = http.post(f"/openapi/v2/{model}", json={**BODY, **body}).json()
    assert answer["errorCode"] == "", answer
    return str(answer["taskId"])


def key_row(runtime: Runtime, key: str) -> ApiKey:
    with runtime.db.read() as session:
        found = repo.find_key(session, key)
        assert found is not None
        return found


# -- who is signed in -----------------------------------------------------------------------


def test_me_says_who_the_key_is_and_never_the_key(
    http: httpx.Client, admin: httpx.Client, api_key: str
) -> None:
    mine = http.get("/dashboard/api/me")
    assert mine.status_code == 200
    assert mine.json()["admin"] is False
    assert mine.json()["prefix"] == api_key[:6]
    assert api_key not in mine.text
    assert admin.get("/dashboard/api/me").json()["admin"] is True


def test_a_bad_key_is_refused_before_anything(live_server: LiveServer) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-key"}):
        answer = httpx.get(f"{live_server.url}/dashboard/api/tasks", headers=headers)
        assert answer.status_code == 400
        assert answer.json()["error"] == "1002"
    answer = httpx.get(
        f"{live_server.url}/dashboard/api/events", headers={"Authorization": "Bearer nope"}
    )
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/json")


# -- task pages -----------------------------------------------------------------------------


def test_a_key_lists_only_its_own_tasks_and_an_admin_every_keys(
    runtime: Runtime, http: httpx.Client, admin: httpx.Client, live_server: LiveServer
) -> None:
    mine = [submit(http), submit(http, STD)]
    with client(live_server, new_key(runtime)) as other_http:
        theirs = submit(other_http)
    listed = http.get("/dashboard/api/tasks").json()
    assert [t["taskId"] for t in listed["tasks"]] == mine[::-1]  # newest first
    assert listed["older"] is None
    first = listed["tasks"][1]
    assert first["status"] == "QUEUED"
    assert first["reservedCoins"] == 3 * 87
    assert first["chargedCoins"] is None
    assert first["prompt"] == "a lantern street"
    assert first["duration"] == 3
    everyone = admin.get("/dashboard/api/tasks").json()["tasks"]
    assert [t["taskId"] for t in everyone] == [theirs, *mine[::-1]]
    # A key filter is an admin's only.
    their_key = everyone[0]["keyId"]
    only = admin.get("/dashboard/api/tasks", params={"key": their_key}).json()["tasks"]
    assert [t["taskId"] for t in only] == [theirs]
    refused = http.get("/dashboard/api/tasks", params={"key": their_key})
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "1002",
        "message": "This needs an admin key: only an admin key sees other keys' tasks",
    }


def test_filters_and_paging(http: httpx.Client) -> None:
    ids = [submit(http, PRO if n % 2 else STD) for n in range(5)]
    cancelled = ids[0]
    assert http.post("/task/openapi/cancel", json={"taskId": cancelled}).json()["code"] == 0

    def listed(**params: Any) -> dict[str, Any]:
        answer = http.get("/dashboard/api/tasks", params=params)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    assert [t["taskId"] for t in listed(status="CANCEL")["tasks"]] == [cancelled]
    assert [t["taskId"] for t in listed(status="queued", model=STD)["tasks"]] == [ids[4], ids[2]]
    assert {t["model"] for t in listed(model=PRO)["tasks"]} == {PRO}
    # Pages of two, newest first, each ``older`` leading to the next.
    seen: list[str] = []
    before: str | None = None
    while True:
        page = listed(limit=2, **({"before": before} if before else {}))
        seen += [t["taskId"] for t in page["tasks"]]
        before = page["older"]
        if before is None:
            break
    assert seen == ids[::-1]
    for bad in ({"limit": 0}, {"limit": 101}, {"status": "DONE"}, {"before": "x"}):
        answer = http.get("/dashboard/api/tasks", params=bad)
        assert answer.status_code == 400, bad
        assert answer.json()["error"] == "1007"


def test_a_task_with_its_request_and_history(
    runtime: Runtime, http: httpx.Client, admin: httpx.Client, live_server: LiveServer
) -> None:
    shots = [{"index": 1, "prompt": "wide", "duration": "2"}, {"index": 2, "prompt": "close"}]
    task_id = submit(
        http,
        multiShot=True,
        multiPrompt=shots,
        duration=5,
        sound=False,
        elementList=["el-1"],
        webhookUrl="http://127.0.0.1:9/hook",
        seed=7,
        size="640x360",
    )
    assert http.post("/task/openapi/cancel", json={"taskId": task_id}).json()["code"] == 0
    detail = http.get(f"/dashboard/api/tasks/{task_id}").json()
    assert detail["own"] is True
    assert detail["task"]["status"] == "CANCEL"
    # The body by wire names, as "run again" sends it: the same request once more.
    request = detail["request"]
    assert request["multiPrompt"] == shots
    assert request["firstImageUrl"] == BODY["firstImageUrl"]
    assert request["webhookUrl"] == "http://127.0.0.1:9/hook"
    assert request["elementList"] == ["el-1"]
    assert request["sound"] is False
    assert (request["seed"], request["size"]) == (7, "640x360")
    assert [(e["fromStatus"], e["toStatus"], e["actor"]) for e in detail["events"]] == [
        (None, "QUEUED", "api"),
        ("QUEUED", "CANCEL", "api"),
    ]
    assert detail["usage"]["consumeCoins"] == "0"
    again = http.post(f"/openapi/v2/{PRO}", json=request).json()
    assert again["errorCode"] == "" and again["taskId"] != task_id
    # Another key's task is not there for a plain key; an admin sees it (not as its own).
    with client(live_server, new_key(runtime)) as other_http:
        answer = other_http.get(f"/dashboard/api/tasks/{task_id}").json()
        assert answer["error"] == "1004"
    seen = admin.get(f"/dashboard/api/tasks/{task_id}").json()
    assert seen["own"] is False and seen["task"]["taskId"] == task_id
    assert admin.get("/dashboard/api/tasks/123").json()["error"] == "1004"
    assert admin.get("/dashboard/api/tasks/abc").json()["error"] == "1004"


def test_tasks_past_their_retention_are_gone_here_too(
    runtime: Runtime, http: httpx.Client, admin: httpx.Client
) -> None:
    """As ``/query`` answers them: a task that ended longer ago than the retention (swept or
    not) is neither listed nor shown, to its owner or to an admin."""
    old, swept, kept = submit(http), submit(http), submit(http)
    for task_id in (old, swept, kept):
        assert http.post("/task/openapi/cancel", json={"taskId": task_id}).json()["code"] == 0
    long_ago = utcnow() - timedelta(seconds=runtime.settings.retention.results_seconds + 60)
    with runtime.db.write() as session:
        session.execute(update(Task).where(Task.id == int(old)).values(finished_at=long_ago))
        session.execute(update(Task).where(Task.id == int(swept)).values(expired_at=utcnow()))
    for client_ in (http, admin):
        listed = client_.get("/dashboard/api/tasks").json()["tasks"]
        assert [t["taskId"] for t in listed] == [kept]
        for gone in (old, swept):
            assert client_.get(f"/dashboard/api/tasks/{gone}").json()["error"] == "1004"
        assert client_.get(f"/dashboard/api/tasks/{kept}").status_code == 200


def test_an_admin_cancels_another_keys_task_with_a_refund(
    runtime: Runtime, http: httpx.Client, admin: httpx.Client, api_key: str
) -> None:
    before = key_row(runtime, api_key).coins
    task_id = submit(http)
    assert http.post(f"/dashboard/api/tasks/{task_id}/cancel").status_code == 403
    detail = admin.post(f"/dashboard/api/tasks/{task_id}/cancel").json()
    assert detail["task"]["status"] == "CANCEL"
    assert detail["events"][-1]["actor"] == "operator"
    assert key_row(runtime, api_key).coins == before


# -- admin: keys and fleet ------------------------------------------------------------------


def test_admin_views_refuse_other_keys(http: httpx.Client) -> None:
    for method, path in (
        ("GET", "/dashboard/api/keys"),
        ("POST", "/dashboard/api/keys"),
        ("POST", "/dashboard/api/keys/1/disable"),
        ("POST", "/dashboard/api/keys/1/coins"),
        ("GET", "/dashboard/api/fleet"),
    ):
        answer = http.request(method, path, json={"name": "x", "amount": 5})
        assert answer.status_code == 403, (path, answer.text)
        assert answer.json()["error"] == "1002"


def test_an_admin_creates_credits_and_disables_keys(
    runtime: Runtime, admin: httpx.Client, live_server: LiveServer
) -> None:
    created = admin.post(
        "/dashboard/api/keys", json={"name": "team", "coins": 500, "concurrency": 3}
    ).json()
    new = created["apiKey"]
    assert created["key"]["prefix"] == new[:6]
    assert created["key"]["coins"] == 500 and created["key"]["admin"] is False
    # Shown once: listings carry prefixes only.
    keys = admin.get("/dashboard/api/keys")
    assert new not in keys.text
    key_id = created["key"]["id"]
    assert key_id in [row["id"] for row in keys.json()]

    answer = admin.post(f"/dashboard/api/keys/{key_id}/coins", json={"amount": 250})
    assert answer.json()["coins"] == 750
    too_much = admin.post(f"/dashboard/api/keys/{key_id}/coins", json={"amount": -751})
    assert too_much.status_code == 400 and "below 0" in too_much.json()["message"]
    assert key_row(runtime, new).coins == 750
    for body in ({"amount": 0}, {"amount": "5"}, {}, {"amount": 1, "more": 1}):
        assert admin.post(f"/dashboard/api/keys/{key_id}/coins", json=body).status_code == 400

    with client(live_server, new) as team:
        queued = submit(team, STD)  # 3 s × 69
        assert key_row(runtime, new).coins == 750 - 207
        done = admin.post(f"/dashboard/api/keys/{key_id}/disable", json={}).json()
        assert done["key"]["disabled"] is True
        assert done["cancelled"] == 1 and done["coinsRefunded"] == 207
        assert team.get("/dashboard/api/me").json()["error"] == "1002"
    assert key_row(runtime, new).coins == 750
    assert admin.get(f"/dashboard/api/tasks/{queued}").json()["task"]["status"] == "CANCEL"

    me = admin.get("/dashboard/api/me").json()
    itself = admin.post(f"/dashboard/api/keys/{me['id']}/disable", json={})
    assert itself.status_code == 400
    assert admin.post("/dashboard/api/keys/99999/disable", json={}).status_code == 400
    assert admin.post("/dashboard/api/keys", json={"name": " "}).status_code == 400
    made_admin = admin.post("/dashboard/api/keys", json={"name": "ops 2", "admin": True}).json()
    assert made_admin["key"]["admin"] is True
    with client(live_server, made_admin["apiKey"]) as second:
        assert second.get("/dashboard/api/fleet").status_code == 200


def test_the_fleet_shows_queue_depth_and_recent_workers(
    runtime: Runtime, http: httpx.Client, admin: httpx.Client
) -> None:
    submit(http)
    submit(http)
    with runtime.db.write() as session:
        queue.register_worker(session, "host-a:1:abc", "host-a", 1)
    fleet = admin.get("/dashboard/api/fleet").json()
    assert fleet["queued"] == 2 and fleet["running"] == 0
    assert fleet["oldestQueuedSeconds"] >= 0
    assert [w["id"] for w in fleet["workers"]] == ["host-a:1:abc"]


# -- the live stream ------------------------------------------------------------------------


class Stream:
    """Server-sent events read in a thread, as a browser would."""

    def __init__(self, server: LiveServer, key: str, after: str | None = None) -> None:
        self.messages: list[dict[str, str]] = []
        self.ended = threading.Event()
        self._client = httpx.Client(base_url=server.url, timeout=httpx.Timeout(30, read=30))
        params = {"after": after} if after else {}
        self._response = self._client.send(
            self._client.build_request(
                "GET",
                "/dashboard/api/events",
                params=params,
                headers={"Authorization": f"Bearer {key}"},
            ),
            stream=True,
        )
        self.headers = self._response.headers
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        message: dict[str, str] = {}
        try:
            for line in self._response.iter_lines():
                if not line:
                    if message:
                        self.messages.append(message)
                    message = {}
                elif not line.startswith(":"):
                    field, _, value = line.partition(":")
                    message[field] = message.get(field, "") + value.removeprefix(" ")
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()

    def tasks(self) -> list[dict[str, Any]]:
        return [json.loads(m["data"]) for m in list(self.messages) if m.get("event") == "task"]

    def wait_for(self, predicate: Any, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for item in self.tasks():
                if predicate(item):
                    return item
            time.sleep(0.05)
        raise AssertionError(f"no such event; got {self.messages}")

    def close(self) -> None:
        # As a browser leaving the page: the connection goes at once, even while it is read.
        sock = self._response.extensions["network_stream"].get_extra_info("socket")
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)
        assert not self._thread.is_alive()
        self._response.close()
        self._client.close()


@pytest.fixture
def streams() -> Iterator[list[Stream]]:
    opened: list[Stream] = []
    yield opened
    for stream in opened:
        stream.close()


def test_the_stream_tells_each_change_of_the_keys_tasks(
    runtime: Runtime,
    http: httpx.Client,
    api_key: str,
    live_server: LiveServer,
    streams: list[Stream],
) -> None:
    stream = Stream(live_server, api_key)
    streams.append(stream)
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.headers["cache-control"] == "no-store"
    deadline = time.monotonic() + 10
    while not stream.messages and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stream.messages[0]["event"] == "ready" and stream.messages[0]["id"].isdigit()
    with client(live_server, new_key(runtime)) as other_http:
        task_id = submit(http)
        theirs = submit(other_http)
        queued = stream.wait_for(lambda t: t["taskId"] == task_id)
        assert queued["status"] == "QUEUED" and queued["progress"] == 0
        http.post("/task/openapi/cancel", json={"taskId": task_id})
        stream.wait_for(lambda t: t["taskId"] == task_id and t["status"] == "CANCEL")
        other_http.post("/task/openapi/cancel", json={"taskId": theirs})
    # Progress is told too (it moves with each heartbeat, without an event).
    running = submit(http)
    with runtime.db.write() as session:
        claimed = queue.claim_next(session, "w:1", 30)
        assert claimed is not None and str(claimed.id) == running
        queue.renew_lease(session, claimed.id, "w:1", 30, 0.5)
    stream.wait_for(lambda t: t["taskId"] == running and t["progress"] == 0.5)
    assert theirs not in {t["taskId"] for t in stream.tasks()}


def test_an_admin_stream_carries_every_key_and_resumes_from_its_cursor(
    runtime: Runtime,
    http: httpx.Client,
    admin: httpx.Client,
    live_server: LiveServer,
    streams: list[Stream],
) -> None:
    key = admin.headers["Authorization"].removeprefix("Bearer ")
    first = Stream(live_server, key)
    streams.append(first)
    task_id = submit(http)
    seen = first.wait_for(lambda t: t["taskId"] == task_id)
    assert seen["keyName"] == "test"
    cursor = next(m["id"] for m in reversed(first.messages) if m.get("event") == "task")
    first.close()
    # Changes while nobody watched arrive when the next stream resumes from the cursor.
    http.post("/task/openapi/cancel", json={"taskId": task_id})
    resumed = Stream(live_server, key, after=cursor)
    streams.append(resumed)
    resumed.wait_for(lambda t: t["taskId"] == task_id and t["status"] == "CANCEL")
    bad = httpx.get(
        f"{live_server.url}/dashboard/api/events",
        params={"after": "-1"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert bad.status_code == 400


def test_a_stream_ends_after_a_while_and_when_its_key_is_disabled(
    runtime: Runtime,
    api_key: str,
    live_server: LiveServer,
    streams: list[Stream],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dashboard_api, "STREAM_SECONDS", 1.0)
    ending = Stream(live_server, api_key)
    streams.append(ending)
    assert ending.ended.wait(10)
    assert ending.messages[-1]["event"] == "end"

    monkeypatch.setattr(dashboard_api, "STREAM_SECONDS", 30.0)
    cut = Stream(live_server, api_key)
    streams.append(cut)
    time.sleep(0.3)
    with runtime.db.write() as session:
        key = repo.find_key(session, api_key)
        assert key is not None
        repo.set_key_disabled(session, key, True)
    assert cut.ended.wait(10)
    assert cut.messages[-1]["event"] == "signed-out"


def test_a_stream_stops_polling_when_its_client_leaves(
    api_key: str,
    live_server: LiveServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    looks: list[float] = []
    real = Dashboard.changes

    def counted(self: Any, *args: Any) -> Any:
        looks.append(time.monotonic())
        return real(self, *args)

    monkeypatch.setattr(Dashboard, "changes", counted)
    stream = Stream(live_server, api_key)
    deadline = time.monotonic() + 10
    while len(looks) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(looks) >= 2  # it polls while the client is there
    stream.close()
    # Within a few polls of the client leaving, the server stops looking.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        count = len(looks)
        time.sleep(4 * dashboard_api.POLL_SECONDS)
        if len(looks) == count:
            break
    else:
        raise AssertionError("the stream went on polling after its client left")


# -- pages ----------------------------------------------------------------------------------


def test_pages_are_the_same_for_everyone_and_carry_the_wires_limits(
    live_server: LiveServer,
) -> None:
    with httpx.Client(base_url=live_server.url) as browser:
        for path in (
            "/dashboard",
            "/dashboard/tasks/2009191190196789249",
            "/dashboard/new/image-to-video",
            "/dashboard/new/video-edit",
            "/dashboard/account",
        ):
            page = browser.get(path)
            assert page.status_code == 200, path
            assert page.headers["content-type"].startswith("text/html")
            policy = page.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "connect-src 'self'" in policy
            assert page.headers["referrer-policy"] == "no-referrer"
            assert 'id="api-key" name="api-key" type="password"' in page.text
            assert "<script>" not in page.text  # no inline script: the policy forbids it
        form = browser.get("/dashboard/new/image-to-video").text
        assert 'id="duration" name="duration" min="3" max="15"' in form
        assert 'maxlength="2500"' in form
        assert 'data-max-shots="6"' in form
        assert 'value="kling-video-o3-std/image-to-video"' in form
        assert 'data-max-images="4"' in browser.get("/dashboard/new/video-edit").text
        escaped = browser.get("/dashboard/tasks/<b>x").text
        assert "<b>x" not in escaped and "&lt;b&gt;x" in escaped
        script = browser.get("/dashboard/static/dashboard.js")
        assert script.status_code == 200
        assert "sessionStorage" in script.text
        assert browser.get("/dashboard/static/dashboard.css").status_code == 200
