"""The operator's controls over tasks, through the service, on SQLite and PostgreSQL: disabling a
key cancels its tasks with exact refunds, bulk cancels by key, by every key or by id, listings."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from reelgate.admin import TaskFilter
from reelgate.core.errors import InvalidApiKey, InvalidParameters
from reelgate.core.status import TaskStatus
from reelgate.runtime import Runtime
from reelgate.samples import sample_image
from reelgate.service import Service
from reelgate.store import queue, repo
from reelgate.store.tables import ApiKey, Task, TaskEvent
from reelgate.worker.worker import Worker
from tests.conftest import new_key, running_worker

STD = "kling-video-o3-std/image-to-video"
PRO = "kling-video-o3-pro/image-to-video"
BODY = {"prompt": "street", "firstImageUrl": "https://example.com/a.png", "duration": 3}
START = 10_000


def submit(service: Service, api_key: str, model: str = STD, **body: Any) -> Task:
    return service.submit(service.authenticate(api_key), model, {**BODY, **body})


def key_row(runtime: Runtime, api_key: str) -> ApiKey:
    with runtime.db.read() as session:
        found = repo.find_key(session, api_key)
        assert found is not None
        return found


def task_row(runtime: Runtime, task_id: int) -> Task:
    with runtime.db.read() as session:
        task = repo.get_task(session, task_id)
        assert task is not None
        return task


def last_event(runtime: Runtime, task_id: int) -> tuple[str | None, str, str, str]:
    with runtime.db.read() as session:
        event = (
            session.execute(
                select(TaskEvent).where(TaskEvent.task_id == task_id).order_by(TaskEvent.id.desc())
            )
            .scalars()
            .first()
        )
        assert event is not None
        return event.from_status, event.to_status, event.actor, event.detail


def claim(runtime: Runtime, worker: str = "w1") -> int:
    with runtime.db.write() as session:
        claimed = queue.claim_next(session, worker, 60.0)
    assert claimed is not None
    return claimed.id


def test_disabling_a_key_cancels_its_queued_tasks_with_exact_refunds(runtime: Runtime) -> None:
    service = Service(runtime)
    leaked, other = new_key(runtime, coins=START), new_key(runtime, coins=START)
    tasks = [submit(service, leaked), submit(service, leaked, model=PRO), submit(service, leaked)]
    kept = submit(service, other)
    held = sum(task.reserved_coins for task in tasks)
    assert held > 0 and key_row(runtime, leaked).coins == START - held

    done = service.disable_key(leaked)

    assert done.key.disabled and done.key.coins == START
    summary = done.cancelled
    assert summary.cancelled == tuple(task.id for task in tasks)
    assert (summary.queued, summary.running, summary.refunded) == (3, 0, held)
    assert summary.skipped == {}
    for task in tasks:
        row = task_row(runtime, task.id)
        assert (row.status, row.consumed_coins) == ("CANCEL", 0)
        assert last_event(runtime, task.id) == ("QUEUED", "CANCEL", "operator", "key disabled")
    assert key_row(runtime, leaked).coins == START
    # Another key's task and balance are untouched.
    assert task_row(runtime, kept.id).status == "QUEUED"
    assert key_row(runtime, other).coins == START - kept.reserved_coins
    with pytest.raises(InvalidApiKey):
        service.authenticate(leaked)


def test_running_tasks_run_on_unless_the_operator_cancels_them_too(runtime: Runtime) -> None:
    service = Service(runtime)
    key = new_key(runtime, coins=START, concurrency=2)
    running, queued = submit(service, key), submit(service, key)
    assert claim(runtime) == running.id

    first = service.disable_key(key)
    assert first.cancelled.cancelled == (queued.id,)
    assert task_row(runtime, running.id).status == "RUNNING"
    row = key_row(runtime, key)
    assert (row.running_tasks, row.coins) == (1, START - running.reserved_coins)

    second = service.disable_key(key, cancel_running=True)  # what is left of a disabled key
    assert second.cancelled.cancelled == (running.id,)
    assert (second.cancelled.queued, second.cancelled.running) == (0, 1)
    assert second.cancelled.refunded == running.reserved_coins
    row = key_row(runtime, key)
    assert (row.running_tasks, row.coins) == (0, START)
    assert last_event(runtime, running.id) == ("RUNNING", "CANCEL", "operator", "key disabled")
    with runtime.db.write() as session:  # the worker learns it at its next heartbeat
        assert not queue.renew_lease(session, running.id, "w1", 60.0, 0.5)


def test_a_submit_authenticated_before_the_key_was_disabled_is_refused(runtime: Runtime) -> None:
    service = Service(runtime)
    key = new_key(runtime, coins=START)
    caller = service.authenticate(key)
    service.disable_key(key)
    with pytest.raises(InvalidApiKey, match="disabled"):
        service.submit(caller, STD, BODY)
    assert key_row(runtime, key).coins == START
    assert service.list_tasks(TaskFilter()) == []


def data_uri_png(width: int, height: int) -> str:
    buffer = io.BytesIO()
    sample_image(width, height).save(buffer, format="PNG")
    return f"data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}"


@pytest.fixture
def worker(runtime: Runtime) -> Iterator[Worker]:
    with running_worker(runtime, concurrency=1) as started:
        yield started


def wait_for(runtime: Runtime, task_id: int, statuses: set[str], timeout: float = 90) -> Task:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = task_row(runtime, task_id)
        if task.status in statuses:
            return task
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not reach {statuses} in {timeout} s")


def test_disable_with_cancel_running_stops_a_real_workers_render(
    runtime: Runtime, worker: Worker
) -> None:
    service = Service(runtime)
    leaked, other = new_key(runtime, coins=START), new_key(runtime, coins=START)
    image = data_uri_png(400, 300)
    long_task = submit(service, leaked, firstImageUrl=image, duration=15)
    wait_for(runtime, long_task.id, {"RUNNING"})
    # Queued behind it: the worker renders one task at a time.
    short_task = submit(service, other, firstImageUrl=image)

    done = service.disable_key(leaked, cancel_running=True)

    assert done.cancelled.cancelled == (long_task.id,) and done.cancelled.running == 1
    row = key_row(runtime, leaked)
    assert (row.coins, row.running_tasks) == (START, 0)
    # The worker lets go at its next heartbeat and renders the other key's task.
    assert wait_for(runtime, short_task.id, {"SUCCESS", "FAILED"}).status == "SUCCESS"
    final = task_row(runtime, long_task.id)
    assert (final.status, final.results, final.consumed_coins) == ("CANCEL", None, 0)
    assert key_row(runtime, leaked).coins == START


def test_cancel_one_keys_every_keys_or_named_tasks(runtime: Runtime) -> None:
    service = Service(runtime)
    a, b = new_key(runtime, coins=START), new_key(runtime, coins=START)
    b1 = submit(service, b)
    a1, a2 = submit(service, a), submit(service, a)
    b2 = submit(service, b)
    assert claim(runtime) == b1.id  # the oldest

    by_key = service.cancel_tasks(key=str(key_row(runtime, a).id))  # a key named by its id
    assert by_key.cancelled == (a1.id, a2.id) and by_key.queued == 2
    assert by_key.refunded == a1.reserved_coins + a2.reserved_coins
    assert key_row(runtime, a).coins == START
    assert task_row(runtime, b2.id).status == "QUEUED"

    every = service.cancel_tasks(every_key=True)
    assert every.cancelled == (b2.id,) and every.queued == 1
    assert task_row(runtime, b1.id).status == "RUNNING"

    named = service.cancel_tasks(task_ids=[b1.id, a1.id, 999])
    assert named.cancelled == ()
    assert named.skipped[b1.id] is TaskStatus.RUNNING
    assert named.skipped[999] is None

    with_running = service.cancel_tasks(
        task_ids=[b1.id], statuses=(TaskStatus.QUEUED, TaskStatus.RUNNING)
    )
    assert with_running.cancelled == (b1.id,) and with_running.running == 1
    assert with_running.refunded == b1.reserved_coins
    for key in (a, b):
        row = key_row(runtime, key)
        assert (row.coins, row.running_tasks) == (START, 0)
    assert last_event(runtime, b1.id) == (
        "RUNNING",
        "CANCEL",
        "operator",
        "cancelled by the operator",
    )


@pytest.mark.parametrize(
    "selection",
    [
        {},
        {"key": "x", "every_key": True},
        {"every_key": True, "task_ids": [1]},
        {"every_key": True, "statuses": (TaskStatus.SUCCESS,)},
        {"every_key": True, "statuses": ()},
    ],
)
def test_cancel_refuses_an_unclear_selection(runtime: Runtime, selection: dict[str, Any]) -> None:
    service = Service(runtime)
    key = new_key(runtime)
    task = submit(service, key)
    with pytest.raises(InvalidParameters):
        service.cancel_tasks(**selection)
    assert task_row(runtime, task.id).status == "QUEUED"


def test_cancel_by_an_unknown_key_cancels_nothing(runtime: Runtime) -> None:
    service = Service(runtime)
    task = submit(service, new_key(runtime))
    with pytest.raises(InvalidParameters, match="no key matches"):
        service.cancel_tasks(key="zzzzzz")
    assert task_row(runtime, task.id).status == "QUEUED"


def test_list_tasks_filters_and_orders_newest_first(runtime: Runtime) -> None:
    service = Service(runtime)
    a, b = new_key(runtime), new_key(runtime)
    old = submit(service, a)
    pro = submit(service, a, model=PRO)
    done = submit(service, b)
    cancelled = submit(service, b)
    assert claim(runtime) == old.id
    with runtime.db.write() as session:
        queue.finish(session, old.id, worker_id="w1", results=[])
        queue.cancel(session, cancelled.id, expected=TaskStatus.QUEUED, actor="api")
        session.execute(
            update(Task)
            .where(Task.id == old.id)
            .values(created_at=datetime.now(UTC).replace(tzinfo=None) - timedelta(days=3))
        )

    def ids(**filters: Any) -> list[int]:
        return [row.task.id for row in service.list_tasks(TaskFilter(**filters))]

    assert ids() == [cancelled.id, done.id, pro.id, old.id]
    assert ids(key=a) == [pro.id, old.id]
    assert ids(statuses=frozenset({TaskStatus.SUCCESS, TaskStatus.CANCEL})) == [
        cancelled.id,
        old.id,
    ]
    assert ids(model=PRO) == [pro.id]
    assert ids(model=f"/{PRO}") == [pro.id]
    assert ids(since=datetime.now(UTC) - timedelta(days=1)) == [cancelled.id, done.id, pro.id]
    assert ids(since=datetime.now(UTC) + timedelta(hours=1)) == []
    assert ids(limit=2) == [cancelled.id, done.id]
    assert ids(key=b, statuses=frozenset({TaskStatus.QUEUED})) == [done.id]
    listed = service.list_tasks(TaskFilter(key=a, limit=1))[0]
    assert (listed.key_name, listed.key_prefix) == ("test", a[:6])


@pytest.mark.parametrize(
    ("filters", "why"),
    [
        ({"limit": 0}, "the limit must be between 1 and"),
        ({"limit": 10_001}, "the limit must be between 1 and"),
        ({"key": "zzzzzz"}, "no key matches"),
    ],
)
def test_list_tasks_refuses_bad_filters(
    runtime: Runtime, filters: dict[str, Any], why: str
) -> None:
    with pytest.raises(InvalidParameters, match=why):
        Service(runtime).list_tasks(TaskFilter(**filters))
