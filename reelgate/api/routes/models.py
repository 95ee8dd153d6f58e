"""Model endpoints: ``POST /openapi/v2/{vendor}/{action}`` and their price previews."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from reelgate.api import wire
from reelgate.api.deps import base_url, caller_from_bearer, service
from reelgate.api.errors import json_body
from reelgate.api.routes.tasks import task_response
from reelgate.core.catalogue import CATALOGUE

router = APIRouter(tags=["models"])

_MODEL_LIST = ", ".join(sorted(CATALOGUE))


@router.post(
    "/openapi/v2/price-preview/{vendor}/{action}",
    summary="Price of a request, validated but not run",
)
async def price_preview(vendor: str, action: str, request: Request) -> JSONResponse:
    await caller_from_bearer(request)
    body = await json_body(request)
    coins = await run_in_threadpool(service(request).price, f"{vendor}/{action}", body)
    return JSONResponse(wire.price_v2(coins))


@router.post(
    "/openapi/v2/{vendor}/{action}",
    summary="Submit a task to a model",
    description=f"Models: {_MODEL_LIST}. The answer is the same object as /openapi/v2/query.",
)
async def submit(vendor: str, action: str, request: Request) -> JSONResponse:
    caller = await caller_from_bearer(request)
    body = await json_body(request)
    svc = service(request)
    task = await run_in_threadpool(
        lambda: svc.submit(
            caller,
            f"{vendor}/{action}",
            body,
            idempotency_key=request.headers.get("idempotency-key"),
        )
    )
    request.app.state.metrics.submitted.labels(model=task.model).inc()
    return task_response(task, svc, base_url(request))
