"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute

from reelgate import __version__
from reelgate.api import openapi
from reelgate.api.bodycap import BodyCap
from reelgate.api.errors import install_error_handlers
from reelgate.api.routes import account, health, media, models, tasks, webhooks
from reelgate.api.routes.health import Metrics
from reelgate.config import Settings
from reelgate.runtime import Runtime
from reelgate.service import Service


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
    # A rate-limit storage that cannot be built (Redis without its extra) stops the start,
    # rather than failing every request.
    app.state.service.rate_limits.limiter()
    app.state.metrics = Metrics(
        app.state.service.upstream_key_gauges, app.state.service.fleet_snapshot
    )
    install_error_handlers(app)
    openapi.install(app)
    # Added before the version header's middleware, so that it runs inside it: its own refusals
    # carry the header too.
    app.add_middleware(BodyCap, settings=runtime.settings)

    @app.middleware("http")
    async def _version_header(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers["X-Reelgate-Version"] = __version__
        return response

    # Fixed paths first: the unknown-model route matches any two path segments under /openapi/v2.
    for router in (
        health.router,
        tasks.router,
        webhooks.router,
        media.router,
        account.router,
        models.router,
    ):
        app.include_router(router)
    return app
