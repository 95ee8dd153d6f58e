"""Headless Chromium (Debian's ``chromium`` package, driven by ``playwright``; never a browser
download) against a real server and a real worker that the test starts when it wants the queue
to move.

Without Chromium these tests fail rather than skip: ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

from reelgate.runtime import Runtime
from reelgate.samples import write_sample_image
from reelgate.store import repo
from reelgate.worker.worker import Worker
from tests.conftest import LiveServer, make_settings

#: Where the README's screenshots are written when ``REELGATE_SCREENSHOTS=1``.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"
DESKTOP: ViewportSize = {"width": 1100, "height": 760}
PHONE: ViewportSize = {"width": 390, "height": 844}


def screenshots_wanted() -> bool:
    return os.environ.get("REELGATE_SCREENSHOTS") == "1"


# Read at import: ``clean_environ`` strips every ``REELGATE_`` variable before each test.
_SCREENSHOTS_WANTED = screenshots_wanted()


def screenshot(page: Page, name: str, *, full_page: bool = False) -> None:
    if _SCREENSHOTS_WANTED:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name), full_page=full_page)


# Module scope, not session: playwright's sync API keeps an asyncio loop running in this thread
# while it is open, and every later test of the process that runs its own loop (the async SDK's)
# would fail with "Cannot run the event loop while another loop is running".
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is not installed (apt-get install chromium; .ci/run does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            # Videos play when a test asks, as after a click.
            args=["--autoplay-policy=no-user-gesture-required"],
        )
        yield launched
        launched.close()


class Workers:
    """A real worker in a thread, started and stopped by the test."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        assert self._thread is None
        self._stop = threading.Event()
        worker = Worker(self.runtime, concurrency=1, shutdown_grace_seconds=5)
        self._thread = threading.Thread(target=worker.run, args=(self._stop,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None or self._stop is None:
            return
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive()
        self._thread = None


@dataclass
class Site:
    url: str
    runtime: Runtime
    #: An admin key and a plain one.
    admin_key: str
    user_key: str
    workers: Workers
    first_image: Path
    last_image: Path
    pages: list[Page] = field(default_factory=list)

    def api(self, key: str | None = None) -> httpx.Client:
        token = key or self.admin_key
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def coins(self, key: str) -> int:
        with self.runtime.db.read() as session:
            found = repo.find_key(session, key)
            assert found is not None
            return found.coins


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    # SQLite and small renders: what is tested here is the page, not the store.
    settings = make_settings(
        tmp_path / "data", f"sqlite:///{tmp_path / 'reelgate.db'}", preview_long_side=320
    )
    runtime = Runtime.open(settings)
    with runtime.db.write() as session:
        admin = repo.create_key(
            session, name="ops", coins=100_000, concurrency=2, queue_cap=100, admin=True
        ).api_key
        user = repo.create_key(
            session, name="studio", coins=5_000, concurrency=2, queue_cap=100
        ).api_key
    workers = Workers(runtime)
    first = write_sample_image(tmp_path / "first.png", width=640, height=360, variant="first")
    last = write_sample_image(tmp_path / "last.png", width=640, height=360, variant="last")
    try:
        with LiveServer(runtime) as server:
            found = Site(server.url, runtime, admin, user, workers, first, last)
            yield found
            # Pages first: their live streams are connections the server waits for.
            for page in found.pages:
                page.context.close()
    finally:
        workers.stop()
        runtime.close()


OpenPage = Callable[..., Page]


@pytest.fixture
def open_page(browser: Browser, site: Site) -> Iterator[OpenPage]:
    """``open_page(viewport=…)``: a fresh browser context (its own session storage) and page.
    A script error on any of them fails the test."""
    errors: list[str] = []

    def make(viewport: ViewportSize | None = None) -> Page:
        context = browser.new_context(viewport=viewport or DESKTOP)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        site.pages.append(page)
        return page

    yield make
    assert errors == []
