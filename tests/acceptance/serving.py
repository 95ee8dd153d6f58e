"""``reelgate serve`` as a process of its own, for the tests that need the real command."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import Any

import httpx

from tests.conftest import free_port


def start_serve(
    env: dict[str, str], *args: str, timeout: float = 60.0, **popen: Any
) -> tuple[subprocess.Popen[Any], str]:
    """``reelgate serve --port <a free port> *args`` with ``env``, once its ``/healthz``
    answers 200: the process and its base URL (loopback). ``popen`` goes to ``Popen`` (output
    is discarded unless it says otherwise). A server that exits or does not answer within
    ``timeout`` seconds is killed and the test fails."""
    port = free_port()
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.DEVNULL)
    proc = subprocess.Popen(
        [sys.executable, "-m", "reelgate", "serve", "--port", str(port), *args], env=env, **popen
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    exited = proc.poll() is not None
    if popen.get("start_new_session"):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # its API or worker processes too
    proc.kill()
    proc.wait(10)
    raise AssertionError("reelgate serve exited" if exited else "reelgate serve did not start")
