"""``REELGATE_LOG_FORMAT=json`` in real processes: ``reelgate serve`` and ``reelgate worker`` write
one JSON object per line on stderr, uvicorn's lines included, and every line written while a
task is processed (rendering, failing, delivering its webhook) carries the task's id."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.samples import sample_image
from tests.conftest import free_port
from tests.integration.webhook_receiver import Receiver

I2V = "/openapi/v2/kling-video-o3-std/image-to-video"


def wait_until(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.1)


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a log, parsed: a line that is not one JSON object fails the test."""
    parsed = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        assert isinstance(entry, dict), line
        assert {"time", "level", "logger", "message"} <= set(entry), line
        parsed.append(entry)
    return parsed


class Processes:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.data_dir = tmp_path / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "REELGATE_LOG_FORMAT": "json",
            "REELGATE_DATA_DIR": str(self.data_dir),
            "REELGATE_ALLOW_PRIVATE_NETWORKS": "true",
            "REELGATE_PREVIEW_LONG_SIDE": "256",
            "REELGATE_WORKER__POLL_SECONDS": "0.1",
            "REELGATE_WEBHOOKS__POLL_SECONDS": "0.1",
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def log(self, name: str) -> Path:
        return self.tmp_path / f"{name}.log"

    def start(self, name: str, *args: str) -> None:
        with self.log(name).open("wb") as stderr:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "reelgate", *args],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    def stop(self, name: str, signum: signal.Signals) -> int:
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(signum)
        return proc.wait(30)

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    p = Processes(tmp_path)
    yield p
    p.kill_all()


def image_uri() -> str:
    buffer = io.BytesIO()
    sample_image(400, 400).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def submit(http: httpx.Client, body: dict[str, Any]) -> str:
    answer = http.post(I2V, json={"prompt": "pan left", "duration": 3, **body}).json()
    assert answer["status"] == "QUEUED", answer
    return str(answer["taskId"])


def test_serve_and_worker_write_json_lines_with_the_task_being_processed(
    processes: Processes,
) -> None:
    processes.start("serve", "serve", "--port", str(processes.port), "--workers", "0")

    def serving() -> bool:
        try:
            return httpx.get(processes.url + "/healthz").status_code == 200
        except httpx.TransportError:
            return False

    wait_until(serving)
    processes.start("worker", "worker")
    key = (processes.data_dir / "api-key.txt").read_text().strip()
    with (
        Receiver() as receiver,
        httpx.Client(
            base_url=processes.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as http,
    ):
        rendered = submit(http, {"firstImageUrl": image_uri(), "webhookUrl": receiver.url})
        # Nothing listens there: the fetch fails, and so does the task.
        unfetchable = submit(http, {"firstImageUrl": f"http://127.0.0.1:{free_port()}/a.png"})

        def status(task_id: str) -> str:
            return str(http.post("/openapi/v2/query", json={"taskId": task_id}).json()["status"])

        wait_until(lambda: status(rendered) == "SUCCESS" and status(unfetchable) == "FAILED")
        receiver.wait_for(1)
        # The dispatcher logs the delivery once it is recorded, just after the receiver answered.
        wait_until(lambda: f"of task {rendered}: SUCCESS" in processes.log("worker").read_text())
    assert processes.stop("worker", signal.SIGTERM) == 0
    processes.stop("serve", signal.SIGINT)

    worker_lines = json_lines(processes.log("worker"))
    for task_id in (rendered, unfetchable):
        about = [line for line in worker_lines if f"task {task_id}" in line["message"]]
        assert about and all(line.get("taskId") == task_id for line in about), about
    messages = {
        (line["logger"], line["message"].split(":")[0])
        for line in worker_lines
        if line.get("taskId") == rendered
    }
    assert {
        ("reelgate.worker", f"task {rendered} started"),
        ("reelgate.worker", f"task {rendered} succeeded"),
    } <= messages
    assert any(logger == "reelgate.webhooks" for logger, _ in messages)
    failed = [line for line in worker_lines if line.get("taskId") == unfetchable]
    assert any(line["message"].startswith(f"task {unfetchable} failed") for line in failed)
    # Lines outside a task's processing carry none.
    started = [line for line in worker_lines if line["message"].startswith("worker ")]
    assert started and all("taskId" not in line for line in started)

    serve_lines = json_lines(processes.log("serve"))
    uvicorn_messages = [
        line["message"] for line in serve_lines if line["logger"] == "uvicorn.error"
    ]
    assert any("Uvicorn running on" in message for message in uvicorn_messages), serve_lines


def test_warnings_and_uncaught_exceptions_are_json_lines_too() -> None:
    program = """
import threading, warnings
from reelgate.logs import configure_logging
configure_logging("json")
warnings.warn("an old setting")
thread = threading.Thread(target=lambda: 1 / 0, name="render-0")
thread.start()
thread.join()
raise RuntimeError("the end")
"""
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(line["logger"], line["level"]) for line in lines] == [
        ("py.warnings", "WARNING"),
        ("reelgate", "CRITICAL"),
        ("reelgate", "CRITICAL"),
    ]
    assert "an old setting" in lines[0]["message"]
    assert lines[1]["message"] == "uncaught exception in thread render-0"
    assert lines[1]["exception"].endswith("ZeroDivisionError: division by zero")
    assert lines[2]["exception"].endswith("RuntimeError: the end")
