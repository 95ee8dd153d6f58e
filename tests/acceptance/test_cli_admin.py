"""The operator commands as a user runs them: keys, db upgrade, engines, serve with its worker pool."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from reelgate.samples import write_sample_image
from tests.acceptance.serving import start_serve
from tests.conftest import free_port


def reelgate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reelgate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def environment(tmp_path: Path, db_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "REELGATE_DATA_DIR": str(tmp_path / "data"),
        "REELGATE_DATABASE_URL": db_url,
    }


def test_keys_create_list_disable(tmp_path: Path, db_url: str) -> None:
    env = environment(tmp_path, db_url)
    assert reelgate(env, "db", "upgrade").returncode == 0
    created = reelgate(
        env, "keys", "create", "--name", "ci", "--coins", "500", "--concurrency", "3", "--json"
    )
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert len(key["apiKey"]) == 32
    assert (key["coins"], key["concurrency"]) == (500, 3)
    # The Standard Webhooks form: whsec_ and the base64 of 32 random bytes.
    assert key["webhookSecret"].startswith("whsec_")
    assert len(base64.b64decode(key["webhookSecret"].removeprefix("whsec_"))) == 32
    listed = json.loads(reelgate(env, "keys", "list", "--json").stdout)
    assert [(k["name"], k["prefix"], k["coins"], k["disabled"]) for k in listed] == [
        ("ci", key["apiKey"][:6], 500, False)
    ]
    assert key["apiKey"] not in reelgate(env, "keys", "list").stdout  # only hashes are stored
    assert reelgate(env, "keys", "disable", key["apiKey"][:6]).returncode == 0
    assert json.loads(reelgate(env, "keys", "list", "--json").stdout)[0]["disabled"] is True
    assert reelgate(env, "keys", "disable", "zzzzzz").returncode == 2


def test_keys_create_admin(tmp_path: Path, db_url: str) -> None:
    env = environment(tmp_path, db_url)
    created = reelgate(env, "keys", "create", "--name", "ops", "--admin", "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["admin"] is True
    plain = json.loads(reelgate(env, "keys", "create", "--name", "ci", "--json").stdout)
    assert plain["admin"] is False
    listed = json.loads(reelgate(env, "keys", "list", "--json").stdout)
    assert [(k["name"], k["admin"]) for k in listed] == [("ops", True), ("ci", False)]
    table = reelgate(env, "keys", "list").stdout
    assert "admin" in table and "True" in table
    shown = reelgate(env, "keys", "create", "--name", "ops 2", "--admin").stdout
    assert "Admin API key for 'ops 2' (shown once)" in shown


def test_keys_create_refuses_impossible_amounts(tmp_path: Path, db_url: str) -> None:
    env = environment(tmp_path, db_url)
    for option, value, why in [
        ("--concurrency", "0", "concurrency must be at least 1"),
        ("--coins", "-5", "coins cannot be negative"),
    ]:
        refused = reelgate(env, "keys", "create", "--name", "ci", option, value)
        assert refused.returncode == 2, refused.stderr
        assert why in refused.stderr
        assert "Traceback" not in refused.stderr
    assert json.loads(reelgate(env, "keys", "list", "--json").stdout) == []


def test_keys_disable_refuses_a_prefix_that_several_keys_share(tmp_path: Path, db_url: str) -> None:
    env = environment(tmp_path, db_url)
    keys = [
        json.loads(reelgate(env, "keys", "create", "--name", name, "--json").stdout)
        for name in ("one", "two")
    ]
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE api_keys SET key_prefix = '123456'"))
    finally:
        engine.dispose()
    refused = reelgate(env, "keys", "disable", "123456")
    assert refused.returncode == 2
    assert f"ids {keys[0]['id']}, {keys[1]['id']}" in refused.stderr
    listed = json.loads(reelgate(env, "keys", "list", "--json").stdout)
    assert [k["disabled"] for k in listed] == [False, False]
    assert reelgate(env, "keys", "disable", str(keys[1]["id"])).returncode == 0
    listed = json.loads(reelgate(env, "keys", "list", "--json").stdout)
    assert [k["disabled"] for k in listed] == [False, True]


def test_engines_lists_the_preview_engine(tmp_path: Path, db_url: str) -> None:
    listed = json.loads(reelgate(environment(tmp_path, db_url), "engines", "--json").stdout)
    (preview,) = listed
    assert preview["name"] == "preview" and preview["ready"] and preview["default"]
    assert "kling-video-o3-pro/video-edit" in preview["models"]


def test_serve_creates_a_first_key_and_its_workers_render(tmp_path: Path, db_url: str) -> None:
    env = {**environment(tmp_path, db_url), "REELGATE_PREVIEW_LONG_SIDE": "256"}
    server, base = start_serve(
        env, "--workers", "1", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        key = (tmp_path / "data" / "api-key.txt").read_text().strip()
        headers = {"Authorization": f"Bearer {key}"}
        # The first key is the operator's: an admin in the dashboard, which the server serves.
        assert httpx.get(base + "/dashboard/api/me", headers=headers).json()["admin"] is True
        assert httpx.get(base + "/dashboard").status_code == 200
        image = write_sample_image(tmp_path / "a.png", width=400, height=300)
        url = httpx.post(
            base + "/openapi/v2/media/upload/binary",
            files={"file": ("a.png", image.read_bytes())},
            headers=headers,
        ).json()["data"]["download_url"]
        body = {"prompt": "zoom in", "firstImageUrl": url, "duration": 3, "sound": False}
        task_id = httpx.post(
            base + "/openapi/v2/kling-video-o3-std/image-to-video", json=body, headers=headers
        ).json()["taskId"]
        status = ""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and status not in ("SUCCESS", "FAILED"):
            time.sleep(0.2)
            status = httpx.post(
                base + "/openapi/v2/query", json={"taskId": task_id}, headers=headers
            ).json()["status"]
        assert status == "SUCCESS"
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0
    assert key in output  # printed once at first start


def test_pool_workers_stop_when_their_server_is_killed(tmp_path: Path, db_url: str) -> None:
    env = environment(tmp_path, db_url)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "reelgate", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children: list[int] = []
    deadline = time.monotonic() + 30
    while not children and time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True)
        children = [int(pid) for pid in found.stdout.split()]
        time.sleep(0.2)
    assert children, "the pool started no worker"
    server.kill()
    server.wait(10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(alive(pid) for pid in children):
        time.sleep(0.2)
    assert not any(alive(pid) for pid in children)


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for a parent that may never reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
