"""Two ``reelgate serve --workers 0`` processes on one database share each key's rate limits:
together they accept the limit, not twice it, on SQLite, PostgreSQL and with Redis counters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.acceptance.serving import start_serve

#: Over a 1000 s window (far longer than the test): 4 submits and 10 queries per key.
LIMITS = {
    "REELGATE_RATE_LIMIT_WINDOW_SECONDS": "1000",
    "REELGATE_RATE_LIMIT_PER_SECOND": "0.004",
    "REELGATE_QUERY_RATE_LIMIT_PER_SECOND": "0.01",
}
SUBMITS, QUERIES = 4, 10
I2V = "/openapi/v2/kling-video-o3-std/image-to-video"


@pytest.fixture(params=["database", "redis"])
def two_servers(
    request: pytest.FixtureRequest, tmp_path: Path, db_url: str
) -> Iterator[tuple[list[httpx.Client], list[httpx.Client]]]:
    """Two API processes on one database and, for each, a client per key (two keys)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")},
        "REELGATE_DATA_DIR": str(tmp_path / "data"),
        "REELGATE_DATABASE_URL": db_url,
        **LIMITS,
    }
    if request.param == "redis":
        env["REELGATE_RATE_LIMIT_STORAGE"] = "redis://127.0.0.1:6379"
    procs: list[subprocess.Popen[bytes]] = []
    clients: list[httpx.Client] = []
    try:
        # One after the other: the first creates the schema and the first key.
        for _ in range(2):
            proc, url = start_serve(env, "--workers", "0")
            procs.append(proc)
            clients.append(httpx.Client(base_url=url, timeout=30))
        first_key = (tmp_path / "data" / "api-key.txt").read_text().strip()
        created = subprocess.run(
            [sys.executable, "-m", "reelgate", "keys", "create", "--name", "b", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        second_key = json.loads(created.stdout)["apiKey"]
        for client in clients:
            client.headers["Authorization"] = f"Bearer {first_key}"
        per_key = [
            [
                httpx.Client(
                    base_url=c.base_url, timeout=30, headers={"Authorization": f"Bearer {key}"}
                )
                for c in clients
            ]
            for key in (first_key, second_key)
        ]
        yield per_key[0], per_key[1]
    finally:
        for client in clients:
            client.close()
        for proc in procs:
            proc.kill()
            proc.wait(10)


def statuses(clients: list[httpx.Client], method: str, path: str, count: int) -> list[int]:
    """``count`` requests, alternating between the two processes."""
    body = {"prompt": "p", "firstImageUrl": "https://example.com/a.png"}
    answers = []
    for n in range(count):
        client = clients[n % 2]
        response = client.request(method, path, json=body if path == I2V else None)
        answer = response.json()
        if response.status_code == 429:
            assert 1 <= int(response.headers["Retry-After"]) <= 1000
            assert answer["errorCode" if path == I2V else "code"] in ("1003", 421)
        else:  # accepted, and served
            assert answer.get("errorCode", "") == "" and answer.get("code", 0) == 0, answer
        answers.append(response.status_code)
    return answers


def test_the_processes_together_accept_the_limit_once(
    two_servers: tuple[list[httpx.Client], list[httpx.Client]],
) -> None:
    first, second = two_servers
    queries = statuses(first, "GET", "/openapi/v2/queue/status", 3 * QUERIES)
    assert queries.count(200) == QUERIES and set(queries) == {200, 429}
    # Submits are budgeted apart from queries.
    submits = statuses(first, "POST", I2V, 3 * SUBMITS)
    assert submits.count(200) == SUBMITS and set(submits) == {200, 429}
    # Another key is untouched by the first one's limits.
    assert statuses(second, "GET", "/openapi/v2/queue/status", 2) == [200, 200]
