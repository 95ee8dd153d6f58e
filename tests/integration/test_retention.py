"""Retention on SQLite and PostgreSQL, on a local directory and on S3: expired tasks lose their
files and answer 1004, young ones are untouched, a file shared by uploads stays while one of
them is young, two sweepers delete each file once, an upload racing the sweep of its file gets
it stored again, and ``reelgate gc --dry-run`` reports exactly what ``reelgate gc`` deletes."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select, update

from reelgate.config import RetentionSettings
from reelgate.retention import Swept, collect, sweep
from reelgate.runtime import Runtime
from reelgate.samples import sample_image
from reelgate.service import Service
from reelgate.storage import Storage
from reelgate.storage.base import claim_folder, result_key
from reelgate.store import expiry
from reelgate.store.tables import Task, Upload, utcnow
from reelgate.videos.previews import still_keys
from reelgate.worker.worker import Worker
from tests.acceptance.test_cli_admin import reelgate
from tests.conftest import LiveServer, make_settings, new_key
from tests.integration.test_end_to_end import I2V, wait
from tests.s3 import Bucket

DAY = timedelta(days=1)
NO_SUCH_FILE = {"error": "not_found", "message": "no such file"}


@pytest.fixture(params=["local", "s3"])
def storage_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "local":
        return {}
    bucket: Bucket = request.getfixturevalue("bucket")
    return {"storage_url": bucket.storage_url, "s3": bucket.settings()}


def open_runtime(
    tmp_path: Path, db_url: str, storage_overrides: dict[str, Any], **retention: Any
) -> Runtime:
    values = {"results_seconds": 7 * 86_400, "uploads_seconds": 7 * 86_400, **retention}
    return Runtime.open(
        make_settings(
            tmp_path / "data",
            db_url,
            retention=RetentionSettings(**values),
            **storage_overrides,
        )
    )


@pytest.fixture
def runtime(tmp_path: Path, db_url: str, storage_overrides: dict[str, Any]) -> Iterator[Runtime]:
    rt = open_runtime(tmp_path, db_url, storage_overrides)
    yield rt
    rt.close()


def key_id(runtime: Runtime, api_key: str) -> int:
    return Service(runtime).authenticate(api_key).id


def finished_task(
    runtime: Runtime,
    api_key: str,
    *,
    age: timedelta,
    status: str = "SUCCESS",
    outputs: int = 1,
    idempotency_key: str | None = None,
) -> int:
    """A task that finished ``age`` ago, with ``outputs`` result files stored."""
    service = Service(runtime)
    caller = service.authenticate(api_key)
    body = {"prompt": "p", "firstImageUrl": "https://example.com/a.png", "duration": 3}
    task = service.submit(
        caller, "kling-video-o3-std/image-to-video", body, idempotency_key=idempotency_key
    )
    source = Path(runtime.settings.data_dir) / "source.mp4"
    results = []
    for n in range(1, outputs + 1 if status == "SUCCESS" else 1):
        key = result_key(task.id, claim_folder(1, "0a1b2c3d"), n, "mp4")
        source.write_bytes(f"video {task.id} {n}".encode())
        size = runtime.storage.put_file(key, source)
        results.append({"key": key, "outputType": "mp4", "size": size})
    with runtime.db.write() as session:
        session.execute(
            update(Task)
            .where(Task.id == task.id)
            .values(status=status, results=results or None, finished_at=utcnow() - age)
        )
    return task.id


def result_keys(runtime: Runtime, task_id: int) -> list[str]:
    with runtime.db.read() as session:
        task = session.get(Task, task_id)
        assert task is not None
        return [item["key"] for item in task.results or []]


def age_uploads(runtime: Runtime, age: timedelta, *, ids: Iterable[int] | None = None) -> None:
    statement = update(Upload).values(created_at=utcnow() - age)
    if ids is not None:
        statement = statement.where(Upload.id.in_(list(ids)))
    with runtime.db.write() as session:
        session.execute(statement)


def uploads(runtime: Runtime) -> list[tuple[int, str, datetime | None]]:
    with runtime.db.read() as session:
        rows = session.execute(
            select(Upload.id, Upload.storage_key, Upload.expired_at).order_by(Upload.id)
        ).all()
    return [(row.id, row.storage_key, row.expired_at) for row in rows]


def png(n: int = 0) -> bytes:
    """A PNG of its own for each ``n``."""
    buffer = io.BytesIO()
    sample_image(320 + n, 320).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(http: httpx.Client, data: bytes, name: str = "a.png") -> dict[str, Any]:
    answer = http.post("/openapi/v2/media/upload/binary", files={"file": (name, data)}).json()
    assert answer["code"] == 0, answer
    return dict(answer["data"])


# -- tasks ---------------------------------------------------------------------------------


def test_expired_tasks_lose_their_files_and_answer_1004(runtime: Runtime, tmp_path: Path) -> None:
    api_key = new_key(runtime)
    stop = threading.Event()
    worker = Worker(runtime, concurrency=1, shutdown_grace_seconds=5)
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        with (
            LiveServer(runtime) as server,
            httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
            ) as http,
        ):
            image = "data:image/png;base64," + base64.b64encode(png()).decode()
            body = {"prompt": "a slow pan", "firstImageUrl": image, "duration": 3}
            rendered = wait(http, http.post(I2V, json=body).json()["taskId"])
            assert rendered["status"] == "SUCCESS", rendered
            old_link = rendered["results"][0]["url"]
            rendered_id = int(rendered["taskId"])
            old_failed = finished_task(runtime, api_key, age=8 * DAY, status="FAILED")
            young = finished_task(runtime, api_key, age=6 * DAY, outputs=2)
            young_keys = result_keys(runtime, young)
            with runtime.db.write() as session:  # the rendered one finished 8 days ago
                session.execute(
                    update(Task)
                    .where(Task.id == rendered_id)
                    .values(finished_at=utcnow() - 8 * DAY)
                )
            # Past its time, a task is gone at once, before any sweep deleted its files.
            for task_id in (rendered_id, old_failed):
                answer = http.post("/openapi/v2/query", json={"taskId": str(task_id)}).json()
                unknown = str(task_id + 1)  # no such task: the same answer, byte for byte
                never = http.post("/openapi/v2/query", json={"taskId": unknown}).json()
                message = answer["errorMessage"].replace(str(task_id), unknown)
                assert {**answer, "taskId": unknown, "errorMessage": message} == never
                assert answer["errorCode"] == "1004"
                for path in ("/task/openapi/status", "/task/openapi/outputs"):
                    v1 = http.post(path, json={"apiKey": api_key, "taskId": str(task_id)}).json()
                    assert (v1["code"], v1["msg"]) == (807, "APIKEY_TASK_NOT_FOUND"), v1
            assert httpx.get(old_link).status_code == 200

            swept = sweep(runtime)
            assert (swept.tasks, swept.result_files, swept.uploads) == (2, 1, 0)
            rendered_key = urlsplit(old_link).path.removeprefix("/files/")
            assert rendered_key.startswith(f"results/{rendered_id}/")
            assert not runtime.storage.exists(rendered_key)
            gone = httpx.get(old_link)
            assert (gone.status_code, gone.json()) == (404, NO_SUCH_FILE)
            with runtime.db.read() as session:
                expired = session.execute(
                    select(Task.id).where(Task.expired_at.is_not(None)).order_by(Task.id)
                ).scalars()
                assert list(expired) == sorted([rendered_id, old_failed])
            # The young task and its files are untouched.
            answer = http.post("/openapi/v2/query", json={"taskId": str(young)}).json()
            assert answer["status"] == "SUCCESS"
            assert all(runtime.storage.exists(key) for key in young_keys)
            assert [httpx.get(r["url"]).status_code for r in answer["results"]] == [200, 200]
            assert sweep(runtime).empty  # nothing left to do
    finally:
        stop.set()
        thread.join(30)


def test_an_expired_tasks_idempotency_key_makes_a_new_task(runtime: Runtime) -> None:
    api_key = new_key(runtime)
    old = finished_task(runtime, api_key, age=8 * DAY, idempotency_key="job-1")
    service = Service(runtime)
    body = {"prompt": "p", "firstImageUrl": "https://example.com/a.png", "duration": 3}
    model = "kling-video-o3-std/image-to-video"
    again = service.submit(service.authenticate(api_key), model, body, idempotency_key="job-1")
    assert again.id != old and again.status == "QUEUED"
    young = finished_task(runtime, api_key, age=DAY, idempotency_key="job-2")
    sweep(runtime)
    same = service.submit(service.authenticate(api_key), model, body, idempotency_key="job-2")
    assert same.id == young  # a kept task is still the answer to its key


def test_what_a_lost_claim_left_in_a_tasks_folder_goes_with_the_task(runtime: Runtime) -> None:
    api_key = new_key(runtime)
    old = finished_task(runtime, api_key, age=8 * DAY)
    young = finished_task(runtime, api_key, age=DAY)
    source = Path(runtime.settings.data_dir) / "lost.mp4"
    lost = {}  # the outputs a worker stored for a claim it then lost, before it could finish
    for task_id in (old, young):
        lost[task_id] = result_key(task_id, claim_folder(1, "ffffffff"), 1, "mp4")
        source.write_bytes(b"a lost claim's output")
        runtime.storage.put_file(lost[task_id], source)
    swept = sweep(runtime)
    assert (swept.tasks, swept.result_files) == (1, 1)  # the files its results name
    assert not runtime.storage.exists(lost[old])
    assert not any(runtime.storage.exists(key) for key in result_keys(runtime, old))
    assert runtime.storage.exists(lost[young])  # a kept task keeps its folder
    assert all(runtime.storage.exists(key) for key in result_keys(runtime, young))


def test_zero_keeps_everything(tmp_path: Path, db_url: str, storage_overrides: Any) -> None:
    runtime = open_runtime(
        tmp_path, db_url, storage_overrides, results_seconds=0, uploads_seconds=0
    )
    try:
        api_key = new_key(runtime)
        task_id = finished_task(runtime, api_key, age=400 * DAY)
        age_uploads(runtime, 400 * DAY)
        assert sweep(runtime).empty
        assert Service(runtime).get_task(Service(runtime).authenticate(api_key), task_id)
        assert all(runtime.storage.exists(key) for key in result_keys(runtime, task_id))
    finally:
        runtime.close()


def test_workers_sweep_by_themselves(tmp_path: Path, db_url: str, storage_overrides: Any) -> None:
    runtime = open_runtime(tmp_path, db_url, storage_overrides, sweep_seconds=0.1)
    try:
        task_id = finished_task(runtime, new_key(runtime), age=8 * DAY)
        keys = result_keys(runtime, task_id)
        stop = threading.Event()
        thread = threading.Thread(target=Worker(runtime).run, args=(stop,), daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while any(runtime.storage.exists(key) for key in keys):
                assert time.monotonic() < deadline, "the worker did not sweep"
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join(30)
        with runtime.db.read() as session:
            task = session.get(Task, task_id)
            assert task is not None and task.expired_at is not None
    finally:
        runtime.close()


# -- uploads -------------------------------------------------------------------------------


def test_a_shared_upload_file_stays_while_one_of_its_uploads_is_young(runtime: Runtime) -> None:
    other_key = new_key(runtime)
    with (
        LiveServer(runtime) as server,
        httpx.Client(
            base_url=server.url,
            headers={"Authorization": f"Bearer {new_key(runtime)}"},
            timeout=30,
        ) as http,
        httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {other_key}"}, timeout=30
        ) as other,
    ):
        data, alone = png(1), png(2)
        first = upload(http, data)
        second = upload(other, data, "same-bytes.png")  # another key, the same file
        single = upload(http, alone)
        key = first["fileName"]
        assert second["fileName"] == key
        (first_id, _, _), (second_id, _, _), (single_id, _, _) = uploads(runtime)
        age_uploads(runtime, 8 * DAY, ids=[first_id, single_id])

        swept = sweep(runtime)  # the lone old file goes; the shared one has a young upload
        assert (swept.uploads, swept.upload_files, swept.upload_bytes) == (1, 1, len(alone))
        assert not runtime.storage.exists(single["fileName"])
        assert runtime.storage.exists(key)
        assert httpx.get(first["download_url"]).content == data

        age_uploads(runtime, 7 * DAY + timedelta(seconds=60), ids=[second_id])
        swept = sweep(runtime)
        assert (swept.uploads, swept.upload_files, swept.upload_bytes) == (2, 1, len(data))
        assert not runtime.storage.exists(key)
        assert all(expired is not None for _, _, expired in uploads(runtime))
        for link in (first["download_url"], second["download_url"]):
            gone = httpx.get(link)
            assert (gone.status_code, gone.json()) == (404, NO_SUCH_FILE)

        again = upload(http, data)  # the same bytes once more: stored anew
        assert again["fileName"] == key
        assert httpx.get(again["download_url"]).content == data
        assert uploads(runtime)[-1][2] is None
        assert sweep(runtime).empty


def test_an_upload_racing_the_sweep_of_its_file_stores_it_again(runtime: Runtime) -> None:
    service = Service(runtime)
    caller = service.authenticate(new_key(runtime))
    data = png(3)

    def receive(name: str) -> str:
        incoming = service.begin_upload(caller, name, max_bytes=10 * 2**20)
        incoming.write(data)
        key, _, _ = incoming.finish()
        return key

    key = receive("first.png")
    age_uploads(runtime, 8 * DAY)
    finished: list[str] = []
    racer = threading.Thread(target=lambda: finished.append(receive("second.png")))
    with runtime.db.write() as session:
        (claimed,) = expiry.claim_files(session, utcnow() - 7 * DAY, 10)
        assert claimed.storage_key == key
        runtime.storage.delete([key])
        racer.start()  # it writes its row under the lock the sweep holds: it must wait
        time.sleep(0.5)
        assert racer.is_alive() and not finished
        expiry.expire_uploads(session, claimed.upload_ids, utcnow())
    racer.join(30)
    assert finished == [key]
    assert runtime.storage.exists(key)  # the file the sweep deleted is back
    rows = uploads(runtime)
    assert [expired is None for _, _, expired in rows] == [False, True]


# -- two sweepers ----------------------------------------------------------------------------


class CountingStorage:
    """A storage that counts the deletes of each key (thread-safe)."""

    def __init__(self, inner: Storage) -> None:
        self._inner = inner
        self.deleted: list[str] = []
        self._lock = threading.Lock()

    def delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        self._inner.delete(keys)
        with self._lock:
            self.deleted += keys

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_two_sweepers_at_once_delete_each_file_once(
    tmp_path: Path, db_url: str, storage_overrides: Any
) -> None:
    runtime = open_runtime(tmp_path, db_url, storage_overrides, batch_size=3)
    try:
        api_key = new_key(runtime)
        tasks = [finished_task(runtime, api_key, age=8 * DAY) for _ in range(12)]
        service = Service(runtime)
        caller = service.authenticate(api_key)
        for n in range(8):
            incoming = service.begin_upload(caller, f"{n}.png", max_bytes=10 * 2**20)
            incoming.write(png(10 + n))
            incoming.finish()
        age_uploads(runtime, 8 * DAY)
        counting = CountingStorage(runtime.storage)
        shared = dataclasses.replace(runtime, storage=counting)
        start = threading.Barrier(2)
        reports: list[Swept] = []

        def sweeper() -> None:
            start.wait()
            reports.append(collect(shared, measure=False))

        threads = [threading.Thread(target=sweeper) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(reports) == 2
        assert sorted(counting.deleted) == sorted(set(counting.deleted))  # each once
        stills = {key for task in tasks for key in still_keys(task)}  # none made: deleted anyway
        assert len(set(counting.deleted) - stills) == 12 + 8
        assert sum(r.tasks for r in reports) == 12
        assert sum(r.upload_files for r in reports) == 8
        with runtime.db.read() as session:
            assert all(session.get(Task, t).expired_at for t in tasks)  # type: ignore[union-attr]
    finally:
        runtime.close()


# -- reelgate gc ---------------------------------------------------------------------------


def test_gc_dry_run_reports_exactly_what_gc_then_deletes(
    tmp_path: Path, db_url: str, storage_overrides: dict[str, Any], runtime: Runtime
) -> None:
    api_key = new_key(runtime)
    old = [finished_task(runtime, api_key, age=(8 + n) * DAY, outputs=2) for n in range(3)]
    old_failed = finished_task(runtime, api_key, age=9 * DAY, status="CANCEL")
    young = finished_task(runtime, api_key, age=2 * DAY)
    service = Service(runtime)
    caller = service.authenticate(api_key)
    sizes = []
    for n in range(3):
        incoming = service.begin_upload(caller, f"{n}.png", max_bytes=10 * 2**20)
        data = png(30 + n)
        incoming.write(data)
        sizes.append(len(data))
        incoming.finish()
    age_uploads(runtime, 10 * DAY)
    oldest_upload = uploads(runtime)[0][0]
    age_uploads(runtime, 12 * DAY, ids=[oldest_upload])
    env = gc_environment(tmp_path, db_url, storage_overrides)
    everything = [key for t in [*old, young] for key in result_keys(runtime, t)]

    planned = json_of(reelgate(env, "gc", "--dry-run", "--json"))
    assert all(runtime.storage.exists(key) for key in everything)  # nothing deleted
    assert all(expired is None for _, _, expired in uploads(runtime))
    with runtime.db.read() as session:
        oldest_task = session.get(Task, old[-1])
        assert oldest_task is not None and oldest_task.finished_at is not None
        assert not session.execute(select(Task).where(Task.expired_at.is_not(None))).first()
        upload_rows = session.execute(select(Upload.created_at).order_by(Upload.created_at))
        first_upload = upload_rows.scalars().first()
        assert first_upload is not None
    result_bytes = sum(len(f"video {t} {n}") for t in old for n in (1, 2))
    assert planned == {
        "dryRun": True,
        "results": {
            "keptSeconds": 7 * 86_400,
            "tasks": 4,
            "files": 6,
            "bytes": result_bytes,
            "oldest": oldest_task.finished_at.isoformat(timespec="seconds") + "Z",
        },
        "uploads": {
            "keptSeconds": 7 * 86_400,
            "uploads": 3,
            "files": 3,
            "bytes": sum(sizes),
            "oldest": first_upload.isoformat(timespec="seconds") + "Z",
        },
    }
    text = reelgate(env, "gc", "--dry-run")
    assert text.returncode == 0, text.stderr
    assert "results (kept 7 d): would delete 6 files" in text.stdout
    assert "of 4 finished tasks" in text.stdout
    assert "uploads (kept 7 d): would delete 3 files" in text.stdout

    done = json_of(reelgate(env, "gc", "--json"))
    assert done == {**planned, "dryRun": False}
    assert not any(runtime.storage.exists(key) for t in old for key in result_keys(runtime, t))
    assert all(runtime.storage.exists(key) for key in result_keys(runtime, young))
    assert all(expired is not None for _, _, expired in uploads(runtime))
    with runtime.db.read() as session:
        expired = session.execute(select(Task.id).where(Task.expired_at.is_not(None)))
        assert sorted(expired.scalars()) == sorted([*old, old_failed])

    again = json_of(reelgate(env, "gc", "--json"))
    assert (again["results"]["tasks"], again["uploads"]["files"]) == (0, 0)
    assert again["results"]["oldest"] is None
    text = reelgate(env, "gc")
    assert "results (kept 7 d): deleted 0 files, 0 B, of 0 finished tasks\n" in text.stdout


def gc_environment(
    tmp_path: Path, db_url: str, storage_overrides: dict[str, Any]
) -> dict[str, str]:
    env = {
        **os.environ,
        "REELGATE_DATA_DIR": str(tmp_path / "data"),
        "REELGATE_DATABASE_URL": db_url,
    }
    if storage_overrides:
        env["REELGATE_STORAGE_URL"] = storage_overrides["storage_url"]
        env["REELGATE_S3__ENDPOINT_URL"] = str(storage_overrides["s3"].endpoint_url)
        env["REELGATE_S3__PATH_STYLE"] = "true"
    return env


def json_of(result: Any) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
