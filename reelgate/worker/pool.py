"""The embedded worker pool of ``reelgate serve``: N ``reelgate worker`` child processes.

Workers run as separate processes, not threads of the API, so rendering never competes with
request handling for the GIL and a crashing render cannot take the API down. The pool restarts
a worker that dies and, on shutdown, sends SIGTERM so each child finishes or hands back its task.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

log = logging.getLogger("reelgate.pool")

#: Set in a pool worker's environment: the pid of the ``reelgate serve`` that started it.
PARENT_PID_VARIABLE = "REELGATE_POOL_PARENT_PID"


class WorkerPool:
    def __init__(self, size: int, *, grace_seconds: float = 25.0) -> None:
        self.size = size
        self.grace_seconds = grace_seconds
        self._procs: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, PARENT_PID_VARIABLE: str(os.getpid())}
        return subprocess.Popen([sys.executable, "-m", "reelgate", "worker"], env=env)

    def start(self) -> None:
        self._procs = [self._spawn() for _ in range(self.size)]
        self._monitor = threading.Thread(target=self._watch, name="worker-pool", daemon=True)
        self._monitor.start()

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            for i, proc in enumerate(self._procs):
                code = proc.poll()
                if code is not None and not self._stopping.is_set():
                    log.warning(
                        "worker process %s exited with %s; starting another", proc.pid, code
                    )
                    if self._stopping.wait(1.0):
                        return
                    self._procs[i] = self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        for proc in self._procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds
        for proc in self._procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._monitor is not None:
            self._monitor.join(timeout=5)
