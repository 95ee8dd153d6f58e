"""PostgreSQL out of reach in the middle of a run: the API and a worker reach the shared
PostgreSQL through a proxy that is cut, then restored (the database itself is never stopped).

While it is cut, every request is answered, quickly, in the contract's words: HTTP 503 with the
path's body and code 1010, ``/readyz`` 503. Once it is restored everything heals by itself, with
no restart: new submits succeed, the same worker process takes up the queue again, every task
ends SUCCESS once, and no coin is charged twice."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from tests.acceptance.faultkit import (
    FAST,
    I2V,
    assert_accounts,
    assert_lifecycles,
    body,
    key_coins,
    read_books,
    spawn_logged,
    unfinished,
)
from tests.acceptance.test_processes import Cluster
from tests.tcpproxy import TcpProxy

#: Longer than a cut request may take (the database's connect timeout, 5 s by default, plus
#: a busy machine's delays), far shorter than a hang.
CLIENT_TIMEOUT = 20.0


def test_a_database_out_of_reach_is_answered_1010_and_healed_without_a_restart(
    tmp_path: Path, postgres_url: str
) -> None:
    direct = make_url(postgres_url)
    proxy = TcpProxy(direct.port or 5432)
    cluster = Cluster(
        tmp_path / "data", direct.set(port=proxy.port).render_as_string(hide_password=False)
    )
    # Renders of about half a second (10 s of video at 256 px), so that the cut finds the
    # worker in the middle of the queue.
    cluster.env.update(FAST, REELGATE_PREVIEW_LONG_SIDE="256")
    logs = tmp_path / "logs"
    try:
        cluster.start_server()
        start_coins = key_coins(postgres_url)
        worker = spawn_logged(cluster, logs / "worker.log", "worker")
        http = cluster.http
        http.timeout = httpx.Timeout(CLIENT_TIMEOUT)

        def submit(name: str) -> httpx.Response:
            shot = body(name, duration=10)
            return http.post(I2V, json=shot, headers={"Idempotency-Key": name})

        done = submit("before").json()["taskId"]
        cluster.wait_for(done, lambda t: t["status"] == "SUCCESS", timeout=60)
        queued = [submit(f"queued {n}").json()["taskId"] for n in range(6)]

        proxy.cut()
        assert unfinished(postgres_url) > 0  # the cut caught tasks queued or running
        calls: dict[str, Callable[[], httpx.Response]] = {
            "submit": lambda: submit("during"),
            "query": lambda: http.post("/openapi/v2/query", json={"taskId": done}),
            "v1 status": lambda: http.post(
                "/task/openapi/status",
                json={"apiKey": http.headers["Authorization"][7:], "taskId": done},
            ),
            "account": lambda: http.post("/uc/openapi/accountStatus", json={}),
            "readyz": lambda: http.get("/readyz"),
        }
        with ThreadPoolExecutor(len(calls)) as pool:
            answers = dict(zip(calls, pool.map(lambda call: call(), calls.values()), strict=True))
        time.sleep(1)  # the worker meets the cut too: its claims and heartbeats fail
        assert worker.poll() is None, f"the worker exited; see {logs / 'worker.log'}"
        proxy.restore()

        assert answers["readyz"].status_code == 503
        for name in ("submit", "query"):
            assert answers[name].status_code == 503, (name, answers[name].text)
            assert answers[name].json()["errorCode"] == "1010", (name, answers[name].text)
            assert answers[name].json()["status"] == "FAILED"
        for name in ("v1 status", "account"):
            assert answers[name].status_code == 503, (name, answers[name].text)
            assert answers[name].json()["code"] == 500, (name, answers[name].text)
        assert proxy.held_total > 0  # the requests did go for the database

        # Healed by itself: the same processes, nothing restarted.
        assert http.get("/readyz").status_code == 200
        again = submit("during").json()  # the refused submit, repeated
        assert again["errorCode"] == "", again
        after = submit("after").json()["taskId"]
        for task_id in [*queued, again["taskId"], after]:
            task = cluster.wait_for(task_id, lambda t: t["status"] in ("SUCCESS", "FAILED"))
            assert task["status"] == "SUCCESS", task
        assert worker.poll() is None
    finally:
        cluster.stop()
        proxy.close()

    books = read_books(postgres_url)
    assert len(books.tasks) == 1 + 6 + 2 and unfinished(postgres_url) == 0
    assert all(t.status == "SUCCESS" for t in books.tasks.values())
    assert_lifecycles(books)
    assert_accounts(books, start_coins)
