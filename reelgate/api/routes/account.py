"""Account status (v1 envelope) and queue status."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from reelgate.api import wire
from reelgate.api.deps import caller_from_bearer, caller_from_body, service
from reelgate.api.errors import json_body

router = APIRouter(tags=["account"])


@router.post("/uc/openapi/accountStatus", summary="Coins and current tasks of a key")
async def account_status(request: Request) -> JSONResponse:
    body = await json_body(request)
    caller = await caller_from_body(request, body, field="apikey")
    data = await run_in_threadpool(service(request).account, caller)
    return JSONResponse(wire.ok_v1(data))


@router.get("/openapi/v2/queue/status", summary="Concurrency limit and current tasks of a key")
async def queue_status(request: Request) -> JSONResponse:
    caller = await caller_from_bearer(request)
    data = await run_in_threadpool(service(request).queue_status, caller)
    return JSONResponse(wire.ok_v1(data))
