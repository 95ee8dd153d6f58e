"""reelgate as a gateway: A runs the ``upstream`` engine in front of B, a real reelgate whose
preview engine stands in for the cloud. Tasks are counted on B to prove nothing is paid twice."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import pytest

from reelgate.core.status import TaskStatus
from reelgate.samples import sample_image
from reelgate.store import repo
from reelgate.store.tables import Upload
from tests.integration.gateway import (
    FAST_UPSTREAM,
    CuttingProxy,
    Node,
    node,
    query,
    wait_for,
    wait_until_done,
)

PRO = "/openapi/v2/kling-video-o3-pro/image-to-video"
STD = "/openapi/v2/kling-video-o3-std/image-to-video"


def png(width: int = 400, height: int = 300) -> bytes:
    buffer = io.BytesIO()
    sample_image(width, height).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(http: httpx.Client, data: bytes) -> str:
    answer = http.post("/openapi/v2/media/upload/binary", files={"file": ("in.png", data)})
    url: str = answer.json()["data"]["download_url"]
    return url


def body(image_url: str, prompt: str = "a lantern street") -> dict[str, object]:
    return {"prompt": prompt, "firstImageUrl": image_url, "duration": 3, "sound": False}


def seconds_of(mp4: bytes) -> float:
    with av.open(io.BytesIO(mp4), mode="r") as container:
        stream = container.streams.video[0]
        return float(stream.frames / (stream.average_rate or 1))


@pytest.fixture
def b(tmp_path: Path) -> Iterator[Node]:
    """The stand-in cloud; its worker starts only when a test says so."""
    with node(tmp_path / "b") as cloud:
        yield cloud


def gateway(tmp_path: Path, upstream_url: str, keys: list[str], **overrides: object) -> Node:
    values: dict[str, object] = {
        "engine": "upstream",
        "upstream_url": upstream_url,
        "upstream_keys": ",".join(keys),
    }
    values.update(overrides)
    a = Node(tmp_path / "a", **values)
    a.start_http()
    return a


@pytest.fixture
def a(tmp_path: Path, b: Node) -> Iterator[Node]:
    front = gateway(tmp_path, b.url, [b.new_key(concurrency=2)])
    try:
        yield front
    finally:
        front.close()


def test_a_task_runs_upstream_and_its_output_outlives_the_upstream_copy(a: Node, b: Node) -> None:
    b.start_worker()
    a.start_worker()
    with a.client(a.new_key()) as http:
        submitted = http.post(PRO, json=body(upload(http, png()))).json()
        done = wait_until_done(http, submitted["taskId"])
        assert done["status"] == "SUCCESS", done
        assert b.task_count() == 1
        (upstream_task,) = b.tasks()
        assert upstream_task.status == "SUCCESS"
        # B's copy goes away (RunningHub deletes after a day); A serves its own.
        shutil.rmtree(b.runtime.settings.resolved_storage_dir() / "results")
        (result,) = done["results"]
        assert result["url"].startswith(a.url) and result["outputType"] == "mp4"
        video = httpx.get(result["url"])
        assert video.status_code == 200
        assert abs(seconds_of(video.content) - 3) < 0.1
        # A charges what B charged for the same request (3 s, no sound, pro).
        assert done["usage"]["consumeCoins"] == str(upstream_task.consumed_coins) == "207"


def test_a_business_error_upstream_reaches_the_user_unchanged(a: Node, b: Node) -> None:
    b.start_worker()
    a.start_worker()
    with a.client(a.new_key()) as http:
        # 120 px is below B's 300 px minimum: B refuses the image, A does not look at it.
        submitted = http.post(PRO, json=body(upload(http, png(160, 120)))).json()
        done = wait_until_done(http, submitted["taskId"])
    (upstream_task,) = b.tasks()
    assert upstream_task.status == "FAILED"
    assert done["status"] == "FAILED"
    assert (done["errorCode"], done["errorMessage"]) == (
        upstream_task.error_code,
        upstream_task.error_message,
    )
    assert "300" in done["errorMessage"]
    assert done["usage"]["consumeCoins"] == "0"


def test_cancel_on_the_gateway_cancels_upstream(a: Node, b: Node) -> None:
    a.start_worker()  # B has no worker: its task waits QUEUED
    with a.client(a.new_key()) as http:
        task_id = http.post(PRO, json=body(upload(http, png()))).json()["taskId"]
        wait_for(lambda: b.task_count() == 1, what="the task to reach B")
        wait_for(lambda: query(http, task_id)["status"] == "RUNNING", what="A to run it")
        answer = http.post("/task/openapi/cancel", json={"taskId": task_id}).json()
        assert answer["code"] == 0
        assert query(http, task_id)["status"] == "CANCEL"
    wait_for(lambda: b.tasks()[0].status == TaskStatus.CANCEL, what="B's task to be cancelled")


def test_two_keys_of_concurrency_one_run_two_tasks_at_once_never_three(
    tmp_path: Path, b: Node
) -> None:
    keys = [b.new_key(concurrency=1), b.new_key(concurrency=1)]
    a = gateway(tmp_path, b.url, keys)
    try:
        a.start_worker(concurrency=3)
        with a.client(a.new_key()) as http:
            image = upload(http, png())
            ids = [http.post(PRO, json=body(image, f"shot {n}")).json()["taskId"] for n in range(3)]
            wait_for(lambda: b.task_count() == 2, what="two tasks upstream")
            # The third waits on A for a free slot; B never sees more than two at once.
            for _ in range(20):
                active = [t for t in b.tasks() if t.status in ("QUEUED", "RUNNING")]
                assert len(active) <= 2
                wait_for(lambda: True)
            assert {t.api_key_id for t in b.tasks()} == {1, 2}  # one task per key
            b.start_worker(concurrency=2)
            seen_at_once = 0
            for task_id in ids:
                done = wait_until_done(http, task_id)
                assert done["status"] == "SUCCESS", done
                active = [t for t in b.tasks() if t.status in ("QUEUED", "RUNNING")]
                seen_at_once = max(seen_at_once, len(active))
            assert seen_at_once <= 2
            assert b.task_count() == 3
    finally:
        a.close()


def test_a_submit_answer_cut_after_the_upstream_committed_is_reconciled(
    tmp_path: Path, b: Node
) -> None:
    proxy = CuttingProxy(b.port)
    a = gateway(tmp_path, proxy.url, [b.new_key()])
    try:
        b.start_worker()
        a.start_worker()
        proxy.cut_next_submit()
        with a.client(a.new_key()) as http:
            task_id = http.post(PRO, json=body(upload(http, png()))).json()["taskId"]
            done = wait_until_done(http, task_id)
        assert done["status"] == "SUCCESS", done
        assert proxy.cuts == 1
        assert b.task_count() == 1  # the repeat, with the same Idempotency-Key, found it
    finally:
        a.close()
        proxy.close()


def test_an_upstream_down_for_a_while_then_back_loses_nothing(a: Node, b: Node) -> None:
    a.start_worker()
    with a.client(a.new_key()) as http:
        task_id = http.post(PRO, json=body(upload(http, png()))).json()["taskId"]
        wait_for(lambda: b.task_count() == 1, what="the task to reach B")
        b.stop_http()  # A's polls now fail to connect
        wait_for(lambda: True, timeout=0.1)
        assert query(http, task_id)["status"] == "RUNNING"
        b.start_worker()
        b.start_http()
        done = wait_until_done(http, task_id)
    assert done["status"] == "SUCCESS", done
    assert b.task_count() == 1


def test_mixed_routing_serves_pro_upstream_and_std_locally(tmp_path: Path, b: Node) -> None:
    a = gateway(
        tmp_path,
        b.url,
        [b.new_key()],
        engine="preview",
        routes={"kling-video-o3-pro/*": "upstream"},
    )
    try:
        b.start_worker()
        a.start_worker(concurrency=2)
        with a.client(a.new_key()) as http:
            image = upload(http, png())
            pro = http.post(PRO, json=body(image)).json()["taskId"]
            std = http.post(STD, json=body(image)).json()["taskId"]
            assert wait_until_done(http, pro)["status"] == "SUCCESS"
            assert wait_until_done(http, std)["status"] == "SUCCESS"
        (upstream_task,) = b.tasks()
        assert upstream_task.model == "kling-video-o3-pro/image-to-video"
    finally:
        a.close()


def test_a_cancel_while_no_worker_holds_the_task_is_passed_on_later(a: Node, b: Node) -> None:
    a.start_worker()  # B has no worker: its task waits QUEUED
    with a.client(a.new_key()) as http:
        task_id = http.post(PRO, json=body(upload(http, png()))).json()["taskId"]
        wait_for(lambda: b.task_count() == 1, what="the task to reach B")
        wait_for(
            lambda: (a.tasks()[0].checkpoint or {}).get("stage") == "submitted", what="a checkpoint"
        )
        a.stop_worker()  # handed back: QUEUED on A, still alive on B
        assert query(http, task_id)["status"] == "QUEUED"
        assert http.post("/task/openapi/cancel", json={"taskId": task_id}).json()["code"] == 0
    assert b.tasks()[0].status == "QUEUED"
    a.start_worker()  # any worker with the engine passes the cancel on
    wait_for(lambda: b.tasks()[0].status == "CANCEL", what="B's task to be cancelled")
    wait_for(lambda: a.tasks()[0].remote_key is None, what="the slot to be freed")


def test_a_key_without_coins_leaves_the_rotation_and_another_key_takes_the_task(
    tmp_path: Path, b: Node
) -> None:
    poor, rich = b.new_key(coins=0), b.new_key(coins=10_000)
    a = gateway(tmp_path, b.url, [poor, rich])
    try:
        b.start_worker()
        a.start_worker()
        with a.client(a.new_key()) as http:
            done = wait_until_done(
                http, http.post(PRO, json=body(upload(http, png()))).json()["taskId"]
            )
        assert done["status"] == "SUCCESS", done
        (upstream_task,) = b.tasks()
        with b.runtime.db.read() as session:
            rich_key = repo.find_key(session, rich)
            assert rich_key is not None and upstream_task.api_key_id == rich_key.id
        states = {s.label: s for s in a.worker_engine().pool.states()}
        assert states[poor[:4] + "…"].out_of_rotation
        assert not states[rich[:4] + "…"].out_of_rotation
        metrics = httpx.get(f"{a.url}/metrics").text
        assert f'reelgate_upstream_key_in_rotation{{key="{poor[:4]}…"}} 0.0' in metrics
        assert f'reelgate_upstream_key_in_rotation{{key="{rich[:4]}…"}} 1.0' in metrics
        assert poor not in metrics and rich not in metrics
    finally:
        a.close()


def test_a_path_outside_the_catalogue_gets_the_upstreams_own_answer(a: Node, b: Node) -> None:
    path = "/openapi/v2/kling-video-o3-pro/text-to-video"
    request = {"prompt": "a lantern street", "duration": 5}
    with a.client(a.new_key()) as http, b.client(b.new_key()) as direct:
        through_a = http.post(path, json=request).json()
        from_b = direct.post(path, json=request).json()
        assert through_a == from_b  # B's code and message, verbatim
        assert (through_a["status"], through_a["errorCode"]) == ("FAILED", "1007")
        b.stop_http()
        unreachable = http.post(path, json=request).json()
    # A really asks B: with B gone, the answer is that the upstream cannot be reached.
    assert unreachable["errorCode"] == "1010"
    assert a.task_count() == 0


def test_engines_shows_the_upstream_and_each_key_without_the_keys(tmp_path: Path, b: Node) -> None:
    rich, poor = b.new_key(concurrency=3), b.new_key(coins=0)
    env = {
        **os.environ,
        "REELGATE_DATA_DIR": str(tmp_path / "cli"),
        "REELGATE_ROUTES": json.dumps({"kling-video-o3-pro/*": "upstream"}),
        "REELGATE_UPSTREAM_URL": b.url,
        "REELGATE_UPSTREAM_KEYS": f"{rich},{poor}",
    }

    def engines() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reelgate", "engines", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    listing = engines()
    assert listing.returncode == 0, listing.stderr
    assert rich not in listing.stdout and poor not in listing.stdout
    rows = {row["name"]: row for row in json.loads(listing.stdout)}
    assert rows["preview"]["default"] and rows["upstream"]["ready"]
    assert rows["upstream"]["routed"] == [
        "kling-video-o3-pro/image-to-video",
        "kling-video-o3-pro/video-edit",
    ]
    keys = {key["key"]: key for key in rows["upstream"]["keys"]}
    assert keys[rich[:4] + "…"]["concurrency"] == 3  # read from B's queue status
    assert keys[rich[:4] + "…"]["balance"] == "1000000"
    assert keys[poor[:4] + "…"]["outOfRotation"] == "no balance left"
    b.stop_http()
    upstream = {row["name"]: row for row in json.loads(engines().stdout)}["upstream"]
    assert not upstream["ready"] and "does not answer" in upstream["detail"]


def test_a_key_whose_queue_is_full_rests_and_another_key_takes_its_task(
    tmp_path: Path, b: Node
) -> None:
    full = b.new_key(concurrency=1, queue_cap=1)
    spare = b.new_key(concurrency=1)
    with b.client(full) as direct:  # B's queue for this key is full (its cap is 1)
        image_on_b = upload(direct, png())
        assert direct.post(PRO, json=body(image_on_b)).json()["errorCode"] == ""
    # A long rest: the full key stays out of the way for the whole test.
    resting = FAST_UPSTREAM.model_copy(update={"rest_seconds": 300.0})
    a = gateway(tmp_path, b.url, [full, spare], upstream=resting)
    try:
        a.start_worker(concurrency=2)
        with a.client(a.new_key()) as http:
            image = upload(http, png())
            ids = [http.post(PRO, json=body(image, f"shot {n}")).json()["taskId"] for n in (1, 2)]
            # One task per key at first: the full key answers 421 and rests.
            wait_for(
                lambda: any(s.resting_until for s in a.worker_engine().pool.states()),
                what="the full key to rest",
            )
            b.start_worker()
            for task_id in ids:
                assert wait_until_done(http, task_id)["status"] == "SUCCESS"
        with b.runtime.db.read() as session:
            spare_id = repo.find_key(session, spare)
            assert spare_id is not None
        # Both of A's tasks ran on the spare key; the full key only ever had its own task.
        assert [t.api_key_id for t in b.tasks()].count(spare_id.id) == 2
        assert b.task_count() == 3
    finally:
        a.close()


def test_inputs_only_reelgate_holds_are_uploaded_to_the_upstream(a: Node, b: Node) -> None:
    b.start_worker()
    a.start_worker()
    data_uri = "data:image/png;base64," + base64.b64encode(png(480, 360)).decode()
    with a.client(a.new_key()) as http:
        own_link = upload(http, png())
        request = {**body(own_link), "lastImageUrl": data_uri}
        done = wait_until_done(http, http.post(PRO, json=request).json()["taskId"])
    assert done["status"] == "SUCCESS", done
    (upstream_task,) = b.tasks()
    # B received links of its own for both, never A's link or the data: URI.
    for field in ("firstImageUrl", "lastImageUrl"):
        assert upstream_task.params[field].startswith(f"{b.url}/files/openapi/")
    with b.runtime.db.read() as session:
        assert session.query(Upload).count() == 2
