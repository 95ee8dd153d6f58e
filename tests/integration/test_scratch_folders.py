"""The scratch folders of killed workers do not pile up: a worker that starts removes those of
its host whose process is gone, and leaves every other folder alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reelgate.runtime import Runtime
from reelgate.worker import scratch
from tests.conftest import running_worker

#: A process that makes a scratch folder as a worker does for a task, says where, and waits.
_HOLD_A_FOLDER = """
import sys, time
from reelgate.worker import scratch
folder = scratch.make(int(sys.argv[1]))
(folder / "frame.png").write_bytes(b"half a render")
print(folder, flush=True)
time.sleep(120)
"""


@pytest.fixture
def temp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary folder of this test and of the processes it starts."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setenv("TMPDIR", str(root))
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


class Holder:
    """A process holding a scratch folder."""

    def __init__(self, task_id: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _HOLD_A_FOLDER, str(task_id)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.folder = Path(self.process.stdout.readline().strip())
        assert self.folder.is_dir(), self.folder

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)  # reaped: a zombie still counts as running

    def stop(self) -> None:
        if self.process.poll() is None:
            self.kill()


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    started: list[Holder] = []
    yield started
    for holder in started:
        holder.stop()


def test_a_starting_worker_removes_the_folders_of_killed_workers_only(
    runtime: Runtime, temp_root: Path, holders: list[Holder]
) -> None:
    holders += [Holder(101), Holder(102)]
    killed, alive = holders
    killed.kill()
    assert killed.process.returncode == -signal.SIGKILL
    assert killed.folder.parent == temp_root
    assert killed.folder.name.startswith(f"reelgate-w{killed.process.pid}-")
    # Left alone: a folder of the old naming, a dead pid's folder of another host, anything else.
    others = [
        temp_root / "reelgate-103-k2j4h5",
        temp_root / f"reelgate-w{killed.process.pid}-00000000-104-abcd",
        temp_root / "reelgate-still-x1y2",
        temp_root / "unrelated",
    ]
    for folder in others:
        folder.mkdir()

    with running_worker(runtime):
        deadline = time.monotonic() + 10
        while killed.folder.exists():
            assert time.monotonic() < deadline, "the killed worker's scratch folder stayed"
            time.sleep(0.02)
    assert alive.process.poll() is None
    assert (alive.folder / "frame.png").read_bytes() == b"half a render"
    assert all(folder.is_dir() for folder in others)


def test_a_folder_whose_process_runs_is_never_removed(temp_root: Path) -> None:
    own = scratch.make(5)  # this process's own, as a worker's running task has
    parent = temp_root / f"reelgate-w{os.getppid()}-{scratch.host_tag()}-6-abcd"
    parent.mkdir()
    assert scratch.remove_orphans() == []
    assert own.is_dir() and parent.is_dir()
