"""The README's first command: ``reelgate serve --demo`` renders the documented example."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av

from tests.conftest import free_port


def test_serve_demo_renders_the_documented_request_and_keeps_serving(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "REELGATE_DATA_DIR": str(tmp_path / "data"),
        "REELGATE_PREVIEW_LONG_SIDE": "256",
    }
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "reelgate", "serve", "--demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert server.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(server.stdout or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            if any("demo: done" in line for line in lines):
                break
            time.sleep(0.2)
        videos = sorted((tmp_path / "reelgate-demo").glob("*_1.mp4"))
        assert len(videos) == 1, "".join(lines)
        with av.open(str(videos[0]), mode="r") as container:
            stream = container.streams.video[0]
            seconds = float(stream.frames / (stream.average_rate or 1))
            assert container.streams.audio  # the documented request asks for sound
        assert abs(seconds - 5) < 0.1  # the documented request is 5 s
        assert server.poll() is None  # the server keeps running after the demo
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
        reader.join(10)
    output = "".join(lines)
    assert "Created the first API key" in output
    assert "demo: done" in output
    assert (tmp_path / "data" / "api-key.txt").read_text().strip() in output
