"""The FastAPI application factory."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute

from reelgate import __version__
from reelgate.api import dashboard, openapi
from reelgate.api.bodycap import BodyCap
from reelgate.api.errors import install_error_handlers
from reelgate.api.middleware import VersionAndTiming
from reelgate.api.routes import account, health, media, models, tasks, videos, webhooks
from reelgate.api.routes.health import Metrics
from reelgate.config import Settings
from reelgate.runtime import Runtime
from reelgate.service import Service
from reelgate.videos.service import VideoService
from reelgate.worker.pool import PARENT_PID_VARIABLE


def app_from_env() -> FastAPI:
    """The app from the ``REELGATE_*`` settings, for servers that build it by name in each of
    their processes: ``reelgate serve --api-workers N``, ``uvicorn --factory
    reelgate.api.app:app_from_env --workers N``, gunicorn with uvicorn's worker class.

    Started by ``reelgate serve``, a process stops when that one is gone.
    """
    parent = os.environ.get(PARENT_PID_VARIABLE)
    if parent:
        threading.Thread(
            target=_stop_when_orphaned, args=(int(parent),), name="orphan-watch", daemon=True
        ).start()
    return create_app(Settings())


def _stop_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's own graceful shutdown


def _operation_id(route: APIRoute) -> str:
    return f"{route.tags[0] if route.tags else 'default'}_{route.name}"


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. Given only settings, it opens (and migrates) the store itself."""
    owns_runtime = runtime is None
    runtime = runtime or Runtime.open(settings or Settings())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_runtime:
            runtime.close()

    app = FastAPI(
        title="reelgate",
        version=__version__,
        description="A self-hosted, RunningHub-compatible video generation API.",
        generate_unique_id_function=_operation_id,
        lifespan=lifespan,
    )
    app.state.service = Service(runtime)
    app.state.videos = VideoService(app.state.service)
    # A rate-limit storage that cannot be built (Redis without its extra) stops the start,
    # rather than failing every request.
    app.state.service.rate_limits.limiter()
    app.state.metrics = Metrics(
        app.state.service.upstream_key_gauges, app.state.service.fleet_snapshot
    )
    install_error_handlers(app)
    openapi.install(app)
    # Added before the version header's middleware, so that it runs inside it: its own refusals
    # carry the header too (and are timed).
    app.add_middleware(BodyCap, settings=runtime.settings)
    app.add_middleware(VersionAndTiming, duration=app.state.metrics.http_request_duration)

    # Fixed paths first: the unknown-model route matches any two path segments under /openapi/v2.
    for router in (
        health.router,
        tasks.router,
        webhooks.router,
        media.router,
        account.router,
        videos.router,
        models.router,
    ):
        app.include_router(router)
    dashboard.install(app)
    return app
