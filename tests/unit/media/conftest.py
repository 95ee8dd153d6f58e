"""Fixtures for the media tests (see ``media_support`` for the helpers behind them)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from reelgate.config import MediaSettings
from reelgate.media import MediaFetcher
from tests.unit.media.media_support import FakeDns, LoopbackOnlyTransport, MediaServer, video_bytes


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., bytes]:
    """``videos(seconds=..., audio=..., container=...)``, cached for the whole run."""
    tmp_dir = tmp_path_factory.mktemp("videos")
    cache: dict[tuple[object, ...], bytes] = {}

    def make(**kwargs: object) -> bytes:
        key = tuple(sorted(kwargs.items()))
        if key not in cache:
            cache[key] = video_bytes(tmp_dir, **kwargs)  # type: ignore[arg-type]
        return cache[key]

    return make


@pytest.fixture
def loopback_client() -> Iterator[httpx.Client]:
    """A client that may only reach 127.0.0.1; ``client._transport.requests`` records requests."""
    with httpx.Client(transport=LoopbackOnlyTransport(), trust_env=False) as client:
        yield client


@pytest.fixture
def tripwire_client() -> Iterator[httpx.Client]:
    """A client that must not send anything at all (the guard must refuse first)."""
    with httpx.Client(transport=LoopbackOnlyTransport(allow=False), trust_env=False) as client:
        yield client


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    dns = FakeDns()
    dns.install(monkeypatch)
    return dns


@pytest.fixture(scope="session")
def server() -> Iterator[MediaServer]:
    srv = MediaServer()
    srv.thread.start()
    yield srv
    srv.stopping.set()
    srv.httpd.shutdown()
    srv.httpd.server_close()
    time.sleep(0)  # let handler threads see ``stopping``


@pytest.fixture
def settings() -> MediaSettings:
    # A short timeout keeps the timeout tests fast; everything else is the default.
    return MediaSettings(fetch_timeout_seconds=1.0)


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "scratch"


@pytest.fixture
def fetcher(settings: MediaSettings, loopback_client: httpx.Client) -> Iterator[MediaFetcher]:
    """Private networks allowed (the test server is on 127.0.0.1)."""
    with MediaFetcher(settings, allow_private_networks=True, http_client=loopback_client) as f:
        yield f


@pytest.fixture
def guarded(settings: MediaSettings, tripwire_client: httpx.Client) -> Iterator[MediaFetcher]:
    """The production default: private networks refused; any request at all fails the test."""
    with MediaFetcher(settings, allow_private_networks=False, http_client=tripwire_client) as f:
        yield f
