"""``/metrics`` after real tasks: a real worker renders with the preview engine, webhooks go to
loopback receivers, and the exposition is parsed the way Prometheus reads it."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from reelgate.config import Settings, WebhookSettings
from reelgate.core.ids import SnowflakeGenerator
from reelgate.fleet import DISPATCH_BOUNDS, RUN_BOUNDS, FleetMetrics
from reelgate.runtime import Runtime
from reelgate.samples import sample_image
from reelgate.service import Service
from reelgate.store import repo
from reelgate.store.tables import utcnow
from reelgate.worker.worker import Worker
from tests.conftest import (
    LiveServer,
    _fresh_postgres_database,
    free_port,
    make_settings,
    new_key,
)
from tests.integration.webhook_receiver import Receiver
from tests.tcpproxy import TcpProxy

STD = "kling-video-o3-std/image-to-video"
PRO = "kling-video-o3-pro/image-to-video"
#: sample name -> {labels as a sorted tuple -> value}
Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    # A failed delivery waits long before its retry, so it stays RETRYING while the test looks.
    webhooks = WebhookSettings(first_retry_seconds=600, poll_seconds=0.05)
    return make_settings(tmp_path / "data", db_url, webhooks=webhooks)


def scrape(url: str) -> Samples:
    answer = httpx.get(url + "/metrics")
    assert answer.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def histogram(samples: Samples, name: str, **labels: str) -> tuple[list[float], float, float]:
    """(the buckets' counts in bound order, +Inf last; _count; _sum) of one labelled series."""
    buckets = [
        (float(dict(key)["le"]), count)
        for key, count in samples.get(name + "_bucket", {}).items()
        if {k: v for k, v in key if k != "le"} == labels
    ]
    return (
        [count for _, count in sorted(buckets)],
        value(samples, name + "_count", **labels),
        value(samples, name + "_sum", **labels),
    )


def image_body(webhook_url: str | None = None) -> dict[str, Any]:
    buffer = io.BytesIO()
    sample_image(400, 400).save(buffer, format="PNG")
    image = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    body: dict[str, Any] = {"prompt": "pan left", "firstImageUrl": image, "duration": 3}
    if webhook_url:
        body["webhookUrl"] = webhook_url
    return body


def submit(http: httpx.Client, model: str, webhook_url: str | None = None) -> str:
    answer = http.post(f"/openapi/v2/{model}", json=image_body(webhook_url)).json()
    assert answer["status"] == "QUEUED", answer
    return str(answer["taskId"])


def wait_until(check: Any, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


def cancel(http: httpx.Client, task_id: str) -> None:
    answer = http.post("/task/openapi/cancel", json={"taskId": task_id}).json()
    assert answer["code"] == 0, answer


def status_of(http: httpx.Client, task_id: str) -> str:
    return str(http.post("/openapi/v2/query", json={"taskId": task_id}).json()["status"])


@pytest.fixture
def worker(runtime: Runtime) -> Iterator[tuple[Worker, threading.Event, threading.Thread]]:
    stop = threading.Event()
    w = Worker(runtime, concurrency=2, shutdown_grace_seconds=5)
    thread = threading.Thread(target=w.run, args=(stop,), daemon=True)
    thread.start()
    yield w, stop, thread
    stop.set()
    thread.join(30)


def test_metrics_count_real_tasks_their_durations_the_queue_webhooks_and_workers(
    runtime: Runtime,
    live_server: LiveServer,
    http: httpx.Client,
    worker: tuple[Worker, threading.Event, threading.Thread],
) -> None:
    failing_key = new_key(runtime)
    Service(runtime).set_key_faults(failing_key, {"fail_rate": 1.0})
    with (
        Receiver() as accepting,
        Receiver(status=500) as refusing,
        httpx.Client(
            base_url=live_server.url, headers={"Authorization": f"Bearer {failing_key}"}
        ) as failing,
    ):
        ran = [
            submit(http, STD, accepting.url),
            submit(http, STD, accepting.url),
            submit(http, PRO, refusing.url),
            submit(failing, STD),
        ]
        wait_until(lambda: all(status_of(http, t) in ("SUCCESS", "FAILED") for t in ran[:3]))
        wait_until(lambda: status_of(failing, ran[3]) == "FAILED")
        accepting.wait_for(2)
        refusing.wait_for(1)
        wait_until(
            lambda: (
                value(scrape(live_server.url), "reelgate_webhook_deliveries", status="RETRYING")
                == 1
            )
        )
        while_working = scrape(live_server.url)

    _, stop, thread = worker
    stop.set()
    thread.join(30)
    # With no worker left, these wait in the queue; one of them is cancelled before it starts.
    waiting = [submit(http, STD) for _ in range(3)]
    cancel(http, waiting[0])
    after = scrape(live_server.url)

    assert [status_of(http, t) for t in ran[:3]] == ["SUCCESS"] * 3
    assert value(while_working, "reelgate_workers_alive") == 1
    assert value(after, "reelgate_workers_alive") == 0
    assert value(after, "reelgate_workers_silent") == 0

    tasks = {
        (dict(key)["model"], dict(key)["status"]): count
        for key, count in after["reelgate_tasks"].items()
    }
    assert tasks == {
        (STD, "SUCCESS"): 2,
        (PRO, "SUCCESS"): 1,
        (STD, "FAILED"): 1,
        (STD, "QUEUED"): 2,
        (STD, "CANCEL"): 1,
    }
    assert value(after, "reelgate_queue_depth") == 2
    assert value(while_working, "reelgate_queue_depth") == 0
    assert value(while_working, "reelgate_queue_oldest_age_seconds") == 0
    assert value(after, "reelgate_queue_oldest_age_seconds") > 0

    # Durations: one observation per task that ran, by its end; none for a task never claimed.
    for (model, status), count in [
        ((STD, "SUCCESS"), 2),
        ((PRO, "SUCCESS"), 1),
        ((STD, "FAILED"), 1),
    ]:
        buckets, observed, total = histogram(
            after, "reelgate_task_duration_seconds", model=model, status=status
        )
        assert observed == count
        assert len(buckets) == len(RUN_BOUNDS) + 1 and buckets[-1] == count
        assert buckets == sorted(buckets)
        assert total >= 0
    assert histogram(after, "reelgate_task_duration_seconds", model=STD, status="SUCCESS")[2] > 0
    assert histogram(after, "reelgate_task_duration_seconds", model=STD, status="CANCEL")[1] == 0
    # Dispatch: every task claimed once, by model (the failed one was claimed, then failed).
    for model, count in [(STD, 3), (PRO, 1)]:
        buckets, observed, total = histogram(
            after, "reelgate_task_dispatch_latency_seconds", model=model
        )
        assert observed == count
        assert len(buckets) == len(DISPATCH_BOUNDS) + 1 and buckets[-1] == count
        assert buckets == sorted(buckets)
        assert total >= 0

    deliveries = {dict(k)["status"]: v for k, v in after["reelgate_webhook_deliveries"].items()}
    assert deliveries == {"PENDING": 0, "RETRYING": 1, "SUCCESS": 2, "FAILED": 0}
    assert value(after, "reelgate_webhook_oldest_pending_age_seconds") > 0

    # Histograms are cumulative: a later scrape never counts fewer.
    again = scrape(live_server.url)
    for name in ("reelgate_task_duration_seconds", "reelgate_task_dispatch_latency_seconds"):
        assert again[name + "_count"] == after[name + "_count"]
        assert again[name + "_bucket"] == after[name + "_bucket"]


def test_settled_tasks_are_tallied_once_and_agree_with_a_full_count(
    runtime: Runtime, http: httpx.Client, worker: tuple[Worker, threading.Event, threading.Thread]
) -> None:
    """With no margin, tasks below the lowest open one settle at once; the kept tally plus the
    newer tasks equals what a new reader counts from scratch, as tasks end and arrive."""
    settling = FleetMetrics(runtime.db, alive_within_seconds=3, settle_seconds=0)

    def fresh() -> Any:
        return FleetMetrics(runtime.db, alive_within_seconds=3, settle_seconds=0).read().tasks

    first = submit(http, STD)
    wait_until(lambda: status_of(http, first) == "SUCCESS")
    _, stop, thread = worker
    stop.set()
    thread.join(30)
    queued = [submit(http, STD), submit(http, PRO)]
    assert settling.read().tasks == fresh()
    assert settling._settled_below > int(first)  # the ended task was folded in
    assert settling._settled_below == int(queued[0])  # the oldest open task bounds it

    for task_id in queued:
        cancel(http, task_id)
    later = settling.read().tasks
    assert settling._settled_below > int(queued[-1])
    assert later == fresh()
    assert later.counts == {(STD, "SUCCESS"): 1, (STD, "CANCEL"): 1, (PRO, "CANCEL"): 1}
    assert later.run_seconds[(STD, "SUCCESS")].count == 1
    assert set(later.dispatch_seconds) == {STD}


def test_durations_fall_in_their_buckets(runtime: Runtime) -> None:
    """The database's own arithmetic on known times: each observation in the right bucket, the
    sums exact, a start before its submit (two hosts' clocks apart) counted as 0."""
    submitted = datetime(2026, 1, 1, 12, 0, 0)
    rows = [  # (status, seconds to the first claim or None, seconds of the run or None)
        ("SUCCESS", 0.05, 0.5),
        ("SUCCESS", 2.0, 7.0),
        ("FAILED", 1000.0, 4000.0),
        ("RUNNING", -3.0, None),
        ("CANCEL", None, None),
    ]
    ids = SnowflakeGenerator()
    with runtime.db.write() as session:
        key = repo.create_key(session, name="times", coins=0, concurrency=1, queue_cap=1)
        for status, dispatch, run in rows:
            started = None if dispatch is None else submitted + timedelta(seconds=dispatch)
            finished = None
            if started is not None and run is not None:
                finished = started + timedelta(seconds=run)
            repo.insert_task(
                session,
                id=ids.next_id(),
                api_key_id=key.id,
                model=STD,
                params={},
                status=status,
                max_attempts=3,
                reserved_coins=0,
                created_at=submitted,
                started_at=started,
                finished_at=finished,
            )
    tasks = FleetMetrics(runtime.db, alive_within_seconds=3).read().tasks

    def at_most(values: list[float], bounds: tuple[float, ...]) -> tuple[int, ...]:
        return tuple(sum(v <= bound for v in values) for bound in bounds)

    succeeded = tasks.run_seconds[(STD, "SUCCESS")]
    assert (succeeded.at_most, succeeded.count) == (at_most([0.5, 7.0], RUN_BOUNDS), 2)
    assert succeeded.total == pytest.approx(7.5, abs=1e-3)
    failed = tasks.run_seconds[(STD, "FAILED")]
    assert (failed.at_most, failed.count) == (at_most([4000.0], RUN_BOUNDS), 1)
    assert failed.total == pytest.approx(4000.0, abs=1e-3)
    assert set(tasks.run_seconds) == {(STD, "SUCCESS"), (STD, "FAILED")}
    dispatched = tasks.dispatch_seconds[STD]
    latencies = [0.05, 2.0, 1000.0, 0.0]
    assert (dispatched.at_most, dispatched.count) == (at_most(latencies, DISPATCH_BOUNDS), 4)
    assert dispatched.total == pytest.approx(sum(latencies), abs=1e-3)


# -- the database out of reach ---------------------------------------------------------------


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _fresh_postgres_database()


@pytest.mark.postgres
def test_metrics_answer_while_the_database_is_out_of_reach(
    tmp_path: Path, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Through a proxy that is cut (the shared PostgreSQL itself is never stopped): 200 with
    the process's own metrics and ``reelgate_database_up 0``, the outage logged once, without
    a traceback; then 1 again, and the fleet's figures back, once the database answers."""
    direct = make_url(postgres_url)
    proxy = TcpProxy(direct.port or 5432)
    # A connection that is never answered is given up after a second, not five.
    proxied = direct.set(port=proxy.port).update_query_dict({"connect_timeout": "1"})
    runtime = Runtime.open(
        make_settings(tmp_path / "data", proxied.render_as_string(hide_password=False))
    )
    try:
        with (
            LiveServer(runtime) as server,
            httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {new_key(runtime)}"}
            ) as http,
        ):
            submit(http, STD)
            before = scrape(server.url)
            assert value(before, "reelgate_database_up") == 1
            assert value(before, "reelgate_tasks", model=STD, status="QUEUED") == 1

            proxy.cut()
            caplog.clear()
            with caplog.at_level(logging.INFO):
                down = [scrape(server.url) for _ in range(3)]  # each answers 200
            for samples in down:
                assert value(samples, "reelgate_database_up") == 0
                assert value(samples, "reelgate_tasks_submitted_total", model=STD) == 1
                assert value(samples, "reelgate_api_process", pid=str(os.getpid())) == 1
                assert (
                    value(
                        samples,
                        "reelgate_http_request_duration_seconds_count",
                        route="/openapi/v2/kling-video-o3-std/image-to-video",
                        method="POST",
                    )
                    == 1
                )
                # What only the database knows is left out, not made up.
                assert "reelgate_tasks" not in samples and "reelgate_queue_depth" not in samples
            told = [r for r in caplog.records if r.name == "reelgate.metrics"]
            assert len(told) == 1, [r.getMessage() for r in told]
            assert told[0].levelno == logging.WARNING and told[0].exc_info is None
            assert "the database does not answer" in told[0].getMessage()
            assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

            proxy.restore()
            caplog.clear()
            with caplog.at_level(logging.INFO):
                after = scrape(server.url)
            assert value(after, "reelgate_database_up") == 1
            assert value(after, "reelgate_tasks", model=STD, status="QUEUED") == 1
            again = [r.getMessage() for r in caplog.records if r.name == "reelgate.metrics"]
            assert again == ["metrics: the database answers again"]
    finally:
        runtime.close()
        proxy.close()


# -- the model label -------------------------------------------------------------------------


class PricingUpstream:
    """A RunningHub-compatible upstream on a loopback port that prices any model at 0.5."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                answer = json.dumps({"errorCode": "", "errorMessage": "", "estimatedPrice": 0.5})
                self.send_response(200 if "/price-preview/" in self.path else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_models_outside_the_catalogue_share_one_label(tmp_path: Path, db_url: str) -> None:
    """Models passed through upstream are counted as ``other``, in the counters and in what the
    database says, so however many names requests bring, the label set stays the catalogue's."""
    upstream = PricingUpstream()
    settings = make_settings(
        tmp_path / "data",
        db_url,
        routes={"acme/*": "upstream"},
        upstream_url=upstream.url,
        upstream_keys="upstream-key",
    )
    runtime = Runtime.open(settings)
    try:
        with (
            LiveServer(runtime) as server,
            httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {new_key(runtime)}"}
            ) as http,
        ):
            submit(http, STD)

            def pass_through(count: int) -> None:
                for _ in range(count):
                    path = f"/openapi/v2/acme/video-{uuid.uuid4().hex}"
                    answer = http.post(path, json={"prompt": "p"}).json()
                    assert answer["status"] == "QUEUED", answer
                # and a name nothing routes: refused, and counted nowhere
                refused = http.post(f"/openapi/v2/nobody/{uuid.uuid4().hex}", json={}).json()
                assert refused["errorCode"] == "1007", refused

            def model_labels(samples: Samples) -> set[str]:
                return {
                    dict(labels)["model"]
                    for name, series in samples.items()
                    for labels in series
                    if "model" in dict(labels)
                }

            pass_through(3)
            # Tasks that ran, as the database holds them (no worker needed).
            ids = SnowflakeGenerator()
            now = utcnow()
            with runtime.db.write() as session:
                key = repo.create_key(session, name="ran", coins=0, concurrency=1, queue_cap=1)
                for run in (2.0, 40.0):
                    repo.insert_task(
                        session,
                        id=ids.next_id(),
                        api_key_id=key.id,
                        model=f"acme/ran-{uuid.uuid4().hex}",
                        params={},
                        status="SUCCESS",
                        max_attempts=3,
                        reserved_coins=0,
                        created_at=now - timedelta(seconds=run + 1),
                        started_at=now - timedelta(seconds=run),
                        finished_at=now,
                    )
            first = scrape(server.url)
            assert model_labels(first) == {STD, "other"}
            assert value(first, "reelgate_tasks_submitted_total", model="other") == 3
            assert value(first, "reelgate_tasks", model="other", status="QUEUED") == 3
            assert value(first, "reelgate_tasks", model="other", status="SUCCESS") == 2
            buckets, count, total = histogram(
                first, "reelgate_task_duration_seconds", model="other", status="SUCCESS"
            )
            assert (count, buckets[-1]) == (2, 2) and total == pytest.approx(42.0, abs=0.1)
            assert histogram(first, "reelgate_task_dispatch_latency_seconds", model="other")[1] == 2

            pass_through(5)
            second = scrape(server.url)
            assert model_labels(second) == {STD, "other"}
            assert value(second, "reelgate_tasks_submitted_total", model="other") == 8
            assert value(second, "reelgate_tasks", model="other", status="QUEUED") == 8
            assert value(second, "reelgate_tasks_submitted_total", model=STD) == 1
    finally:
        runtime.close()
        upstream.close()
