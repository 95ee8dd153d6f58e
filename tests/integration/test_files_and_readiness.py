"""Signed file links and the readiness probe: their exact answers, through the service."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import httpx
import pytest

from reelgate.core.errors import LinkedFileMissing, LinkRefused, NotReady
from reelgate.runtime import Runtime
from reelgate.service import Service
from reelgate.store.db import Database
from tests.conftest import LiveServer, free_port

NO_SUCH_FILE = b'{"error":"not_found","message":"no such file"}'


def signed(runtime: Runtime, key: str, expires: int | None = None) -> tuple[str, str]:
    expires = int(time.time()) + 600 if expires is None else expires
    return str(expires), runtime.signer.signature(key, expires)


def test_a_signed_link_opens_its_file(runtime: Runtime, tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("hello")
    runtime.storage.put_file("results/1/a.txt", source)
    service = Service(runtime)
    stored = service.open_signed_file("results/1/a.txt", *signed(runtime, "results/1/a.txt"))
    assert (stored.key, stored.size, stored.media_type) == (
        "results/1/a.txt",
        5,
        "application/octet-stream",
    )
    assert b"".join(service.read_file(stored, 0, stored.size)) == b"hello"
    assert b"".join(service.read_file(stored, 1, 3)) == b"el"


@pytest.mark.parametrize("key", ["results/1/none.txt", "../outside.txt", "/etc/passwd"])
def test_a_valid_link_to_no_file_is_missing(runtime: Runtime, key: str) -> None:
    with pytest.raises(LinkedFileMissing):
        Service(runtime).open_signed_file(key, *signed(runtime, key))


def test_an_invalid_link_is_refused_with_its_reason(runtime: Runtime) -> None:
    service = Service(runtime)
    with pytest.raises(LinkRefused) as caught:
        service.open_signed_file("a.txt", "soon", "00")
    assert caught.value.reason == "link has no valid expiry"
    with pytest.raises(LinkRefused) as caught:
        service.open_signed_file("a.txt", *signed(runtime, "a.txt", expires=1))
    assert caught.value.reason == "link expired at 1970-01-01 00:00:01 UTC"


def test_file_answers_over_http(runtime: Runtime, live_server: LiveServer, tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("hello")
    runtime.storage.put_file("results/1/a.txt", source)
    expires, signature = signed(runtime, "results/1/a.txt")
    url = f"{live_server.url}/files/results/1/a.txt"
    found = httpx.get(url, params={"expires": expires, "signature": signature})
    assert (found.status_code, found.text) == (200, "hello")
    missing = httpx.get(
        f"{live_server.url}/files/results/1/b.txt",
        params=dict(zip(("expires", "signature"), signed(runtime, "results/1/b.txt"), strict=True)),
    )
    assert (missing.status_code, missing.content) == (404, NO_SUCH_FILE)
    forged = httpx.get(url, params={"expires": expires, "signature": "0" * 40})
    assert (forged.status_code, forged.json()) == (
        403,
        {"error": "forbidden", "message": "link signature does not match"},
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_readiness_without_a_database(runtime: Runtime, backend: str, tmp_path: Path) -> None:
    if backend == "sqlite":
        (tmp_path / "a-directory.db").mkdir()
        url, driver = f"sqlite:///{tmp_path / 'a-directory.db'}", "(sqlite3.OperationalError)"
    else:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres"
        driver = "(psycopg.OperationalError)"
    broken = dataclasses.replace(runtime, db=Database(url))
    try:
        with pytest.raises(NotReady) as caught:
            Service(broken).ready()
        assert caught.value.reason.startswith(f"database: {driver}")
        with LiveServer(broken) as server:
            answer = httpx.get(server.url + "/readyz")
        assert answer.status_code == 503
        assert answer.json() == {"status": "unavailable", "reason": caught.value.reason[:200]}
    finally:
        broken.db.dispose()
    Service(runtime).ready()  # the real database answers
