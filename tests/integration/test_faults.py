"""Fault injection over real HTTP with a real worker: exactly the configured failures, queue
delays, rate-limit answers; and keys without faults untouched."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from reelgate.core.errors import V2_MESSAGES
from reelgate.core.faults import draw
from reelgate.engines.base import RenderContext, RenderResult, RenderSpec
from reelgate.runtime import Runtime
from reelgate.samples import sample_image
from reelgate.service import Service
from reelgate.store import repo
from reelgate.store.tables import Task, utcnow
from reelgate.worker.worker import Worker
from tests.client.conftest import StubEngine
from tests.conftest import LiveServer, new_key

I2V = "/openapi/v2/kling-video-o3-std/image-to-video"


def image() -> str:
    buffer = io.BytesIO()
    sample_image(480, 320).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


class CountingEngine(StubEngine):
    """The stub engine, counting its renders (a failed-by-fault task must never reach it)."""

    def __init__(self) -> None:
        self.renders = 0

    def render(self, spec: RenderSpec, ctx: RenderContext) -> RenderResult:
        self.renders += 1
        return super().render(spec, ctx)


class Gate:
    def __init__(self, runtime: Runtime, url: str) -> None:
        self.runtime = runtime
        self.url = url
        self.service = Service(runtime)
        self.engine = CountingEngine()
        self.worker = Worker(runtime, engine=self.engine)
        self.body = {"prompt": "a street", "firstImageUrl": image(), "duration": 3}
        self._clients: list[httpx.Client] = []

    def client(self, **faults: Any) -> httpx.Client:
        """A client for a new key, with ``faults`` set as the operator sets them."""
        key = new_key(self.runtime)
        if faults:
            self.service.set_key_faults(key, faults)
        client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        self._clients.append(client)
        return client

    def submit(self, client: httpx.Client) -> str:
        answer = client.post(I2V, json=self.body)
        assert answer.status_code == 200 and answer.json()["errorCode"] == "", answer.text
        return str(answer.json()["taskId"])

    def run_all(self) -> list[int]:
        done = []
        while (task_id := self.worker.run_once()) is not None:
            done.append(task_id)
        return done

    def close(self) -> None:
        self.worker.fetcher.close()
        for client in self._clients:
            client.close()


@pytest.fixture
def gate(runtime: Runtime, live_server: LiveServer) -> Iterator[Gate]:
    g = Gate(runtime, live_server.url)
    yield g
    g.close()


def query(client: httpx.Client, task_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = client.post("/openapi/v2/query", json={"taskId": task_id}).json()
    return answer


def coins(client: httpx.Client) -> int:
    return int(client.post("/uc/openapi/accountStatus", json={}).json()["data"]["remainCoins"])


def test_a_fail_rate_of_one_fails_every_task_with_the_code_and_refunds(gate: Gate) -> None:
    faulty = gate.client(fail_rate=1, fail_code="1010")
    before = coins(faulty)
    ids = [gate.submit(faulty) for _ in range(3)]
    assert coins(faulty) < before  # the price is held at submit, as usual
    assert sorted(gate.run_all()) == sorted(int(i) for i in ids)
    for task_id in ids:
        task = query(faulty, task_id)
        assert (task["status"], task["errorCode"]) == ("FAILED", "1010")
        assert task["errorMessage"] == V2_MESSAGES["1010"]
        assert task["failedReason"]["exception_type"] == "1010"
        assert task["usage"]["consumeCoins"] == "0"
    assert coins(faulty) == before
    assert gate.engine.renders == 0


def test_a_fractional_rate_fails_exactly_the_predicted_tasks(gate: Gate) -> None:
    faulty = gate.client(fail_rate=0.5)
    ids = [gate.submit(faulty) for _ in range(12)]
    gate.run_all()
    predicted = {i for i in ids if draw(int(i), "task") < 0.5}
    failed = {i for i in ids if query(faulty, i)["status"] == "FAILED"}
    assert failed == predicted
    for task_id in set(ids) - failed:
        assert query(faulty, task_id)["status"] == "SUCCESS"
    for task_id in failed:
        assert query(faulty, task_id)["errorCode"] == "1015"  # the default code
    assert gate.engine.renders == len(ids) - len(failed)


def test_a_queue_delay_holds_the_task_queued_until_its_time(gate: Gate) -> None:
    delayed = gate.client(queue_delay_seconds=3600)
    plain = gate.client()
    held = gate.submit(delayed)
    with gate.runtime.db.read() as session:
        task = repo.get_task(session, int(held))
        assert task is not None and task.run_after is not None
        assert task.run_after - task.created_at == timedelta(seconds=3600)
    # The held task is skipped, not in the way: a later task of another key runs first.
    other = gate.submit(plain)
    assert gate.run_all() == [int(other)]
    assert query(delayed, held)["status"] == "QUEUED"
    # Its time comes (the clock is moved by moving the task's time, not by waiting).
    with gate.runtime.db.write() as session:
        session.execute(
            update(Task)
            .where(Task.id == int(held))
            .values(run_after=utcnow() - timedelta(seconds=1))
        )
    assert gate.run_all() == [int(held)]
    assert query(delayed, held)["status"] == "SUCCESS"


def test_a_rate_limit_rate_answers_429_exactly_as_a_real_limit(gate: Gate) -> None:
    always = gate.client(rate_limit_rate=1)
    for method, path, body in [
        ("POST", I2V, gate.body),
        ("POST", "/openapi/v2/query", {"taskId": "1999999999999999999"}),
        ("GET", "/openapi/v2/queue/status", None),
        ("POST", "/uc/openapi/accountStatus", {}),
        ("POST", "/openapi/v2/price-preview/kling-video-o3-std/image-to-video", gate.body),
    ]:
        refused = always.request(method, path, json=body)
        assert refused.status_code == 429, path
        assert refused.headers["Retry-After"] == "1"
        assert "1003" in refused.text or '"code":421' in refused.text.replace(" ", "")
    with gate.runtime.db.read() as session:  # the refused submit created nothing
        assert session.scalar(select(func.count()).select_from(Task)) == 0
    half = gate.client(rate_limit_rate=0.5)
    answers = [half.get("/openapi/v2/queue/status").status_code for _ in range(6)]
    assert answers == [200, 429, 200, 429, 200, 429]


def test_a_key_without_faults_is_untouched(gate: Gate) -> None:
    gate.client(fail_rate=1, rate_limit_rate=1, queue_delay_seconds=3600)
    plain = gate.client()
    statuses = [plain.get("/openapi/v2/queue/status").status_code for _ in range(5)]
    assert statuses == [200] * 5
    ids = [gate.submit(plain) for _ in range(3)]
    assert sorted(gate.run_all()) == sorted(int(i) for i in ids)
    assert {query(plain, i)["status"] for i in ids} == {"SUCCESS"}
    with gate.runtime.db.read() as session:
        assert all(
            (task := repo.get_task(session, int(i))) is not None and task.run_after is None
            for i in ids
        )
