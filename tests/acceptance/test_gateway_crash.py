"""The gateway's worker killed with SIGKILL while its task runs upstream: restarted, it finishes
the task with exactly one submit upstream (the checkpoint is read back, nothing is resubmitted)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from reelgate.core.status import TaskStatus
from tests.integration.gateway import node, wait_for, wait_until_done
from tests.integration.test_upstream import PRO, body, png, upload


def test_a_worker_killed_mid_task_resumes_it_without_a_second_upstream_submit(
    tmp_path: Path,
) -> None:
    with node(tmp_path / "b") as b:
        upstream_key = b.new_key()
        with node(
            tmp_path / "a",
            engine="upstream",
            upstream_url=b.url,
            upstream_keys=upstream_key,
        ) as a:
            env = {
                **os.environ,
                "REELGATE_DATA_DIR": str(tmp_path / "a"),
                "REELGATE_DATABASE_URL": a.runtime.settings.resolved_database_url(),
                "REELGATE_ENGINE": "upstream",
                "REELGATE_UPSTREAM_URL": b.url,
                "REELGATE_UPSTREAM_KEYS": upstream_key,
                "REELGATE_ALLOW_PRIVATE_NETWORKS": "true",
                "REELGATE_WORKER__LEASE_SECONDS": "2",
                "REELGATE_WORKER__HEARTBEAT_SECONDS": "0.3",
                "REELGATE_WORKER__SWEEP_SECONDS": "0.5",
                "REELGATE_WORKER__POLL_SECONDS": "0.1",
                "REELGATE_UPSTREAM__MAX_POLL_SECONDS": "0.3",
            }

            def worker() -> subprocess.Popen[bytes]:
                return subprocess.Popen(
                    [sys.executable, "-m", "reelgate", "worker"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )

            first = worker()
            second = None
            try:
                with a.client(a.new_key()) as http:
                    task_id = http.post(PRO, json=body(upload(http, png()))).json()["taskId"]
                    # B has no worker yet: the task waits there while A's worker polls it.
                    wait_for(lambda: b.task_count() == 1, what="the submit to reach B")
                    wait_for(
                        lambda: (a.tasks()[0].checkpoint or {}).get("stage") == "submitted",
                        what="the upstream task id in A's checkpoint",
                    )
                    first.send_signal(signal.SIGKILL)
                    first.wait(10)
                    assert a.tasks()[0].status == TaskStatus.RUNNING  # its lease is still live
                    second = worker()
                    b.start_worker()
                    done = wait_until_done(http, task_id, timeout=120)
                assert done["status"] == "SUCCESS", done
                assert b.task_count() == 1  # exactly one submit upstream
                (task,) = a.tasks()
                assert task.attempts == 2  # claimed again after the lease ran out
            finally:
                for proc in (first, second):
                    if proc is not None and proc.poll() is None:
                        proc.terminate()
                        proc.wait(30)
