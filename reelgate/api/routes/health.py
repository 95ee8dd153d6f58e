"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from reelgate.api.deps import service
from reelgate.core.errors import NotReady

router = APIRouter(tags=["operations"])


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.submitted = Counter(
            "reelgate_tasks_submitted",
            "Tasks accepted, by model",
            ["model"],
            registry=self.registry,
        )


class Health(BaseModel):
    """Liveness and readiness answers (``503`` with a ``reason`` when not ready)."""

    status: Literal["ok", "ready", "unavailable"]
    reason: str | None = Field(None, exclude_if=lambda value: value is None)


@router.get("/healthz", response_model=Health, summary="The process answers")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    summary="The database answers",
    responses={503: {"model": Health, "description": "Not ready: the database does not answer."}},
)
async def readyz(request: Request) -> Health | JSONResponse:
    try:
        await run_in_threadpool(service(request).ready)
    except NotReady as exc:
        not_ready = Health(status="unavailable", reason=exc.reason[:200])
        return JSONResponse(not_ready.model_dump(mode="json"), status_code=503)
    return Health(status="ready")


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
