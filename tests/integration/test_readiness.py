"""``/readyz`` over real HTTP: 200 while the database and the storage both answer, 503 with a
reason that names what is down (and why) when one does not, and ready again once it is back."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.runtime import Runtime
from reelgate.store.db import Database
from tests.conftest import LiveServer, free_port, make_settings


@pytest.fixture
def sqlite_runtime(tmp_path: Path) -> Iterator[Runtime]:
    """The storage checks do not depend on the database: SQLite is enough for them."""
    runtime = Runtime.open(make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'r.db'}"))
    yield runtime
    runtime.close()


def readiness(runtime: Runtime) -> tuple[int, dict[str, Any]]:
    with LiveServer(runtime) as server:
        answer = httpx.get(server.url + "/readyz")
    return answer.status_code, answer.json()


def writable(folder: Path) -> bool:
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        return False
    return True


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` refuses new files while inside: by its mode, or, for root (whom modes do not
    stop), by the file system's immutable flag."""
    mode = folder.stat().st_mode
    folder.chmod(0o555)
    immutable = False
    try:
        if writable(folder):
            immutable = subprocess.run(["chattr", "+i", str(folder)], check=False).returncode == 0
        if writable(folder):
            pytest.skip("this file system cannot make a directory read-only for this user")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(mode)


def test_ready_while_the_database_and_the_storage_answer(sqlite_runtime: Runtime) -> None:
    assert readiness(sqlite_runtime) == (200, {"status": "ready"})
    root = sqlite_runtime.settings.resolved_storage_dir()
    assert not list(root.glob(".ready-*"))  # the probe file is gone again


def test_a_storage_root_that_was_removed_is_not_ready(sqlite_runtime: Runtime) -> None:
    root = sqlite_runtime.settings.resolved_storage_dir()
    shutil.rmtree(root)
    status, body = readiness(sqlite_runtime)
    assert status == 503 and body["status"] == "unavailable"
    assert body["reason"].startswith("storage: ") and str(root) in body["reason"]
    root.mkdir()
    assert readiness(sqlite_runtime) == (200, {"status": "ready"})


def test_a_storage_root_that_became_read_only_is_not_ready(sqlite_runtime: Runtime) -> None:
    root = sqlite_runtime.settings.resolved_storage_dir()
    with read_only(root):
        status, body = readiness(sqlite_runtime)
        assert status == 503 and body["status"] == "unavailable"
        assert body["reason"].startswith("storage: ") and str(root) in body["reason"]
    assert readiness(sqlite_runtime) == (200, {"status": "ready"})


@pytest.mark.postgres
def test_an_unreachable_database_is_not_ready_and_says_so(sqlite_runtime: Runtime) -> None:
    # A loopback port nothing listens on: the database is down, nothing else is touched.
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres"
    unreachable = dataclasses.replace(sqlite_runtime, db=Database(url))
    try:
        status, body = readiness(unreachable)
        assert status == 503 and body["status"] == "unavailable"
        assert body["reason"].startswith("database: (psycopg.OperationalError)"), body
        assert "storage" not in body["reason"]

        # Both down: both named, within the reason's 200 characters.
        shutil.rmtree(sqlite_runtime.settings.resolved_storage_dir())
        status, body = readiness(unreachable)
        assert status == 503
        assert body["reason"].startswith("database: ") and "; storage: " in body["reason"]
        assert len(body["reason"]) <= 200
    finally:
        unreachable.db.dispose()
