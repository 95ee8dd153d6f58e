"""Task endpoints: v2 query, and the v1 cancel / status / outputs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from reelgate.api import wire
from reelgate.api.deps import base_url, caller_from_bearer, caller_from_body, service
from reelgate.api.errors import json_body
from reelgate.core.status import TaskStatus
from reelgate.service import Service
from reelgate.store.tables import Task

router = APIRouter(tags=["tasks"])

#: Poll hints (seconds) sent in ``X-Reelgate-Poll-After``; RunningHub clients ignore them.
POLL_AFTER = {TaskStatus.QUEUED.value: "1", TaskStatus.RUNNING.value: "1"}


def task_response(task: Task, svc: Service, base: str) -> JSONResponse:
    headers = {}
    if task.status in POLL_AFTER:
        headers["X-Reelgate-Poll-After"] = POLL_AFTER[task.status]
        headers["X-Reelgate-Progress"] = f"{task.progress:.3f}"
    body = wire.task_v2(task, lambda key: svc.result_url(base, key))
    return JSONResponse(body, headers=headers)


def _task_id_of(body: Any) -> Any:
    return body.get("taskId") if isinstance(body, dict) else None


@router.post("/openapi/v2/query", summary="Query a task (v2)")
async def query(request: Request) -> JSONResponse:
    caller = await caller_from_bearer(request)
    body = await json_body(request)
    task_id = _task_id_of(body)
    request.state.task_id = str(task_id) if isinstance(task_id, (str, int)) else ""
    svc = service(request)
    task = await run_in_threadpool(svc.get_task, caller, task_id)
    return task_response(task, svc, base_url(request))


@router.post("/task/openapi/cancel", summary="Cancel a queued or running task (v1)")
async def cancel(request: Request) -> JSONResponse:
    body = await json_body(request)
    caller = await caller_from_body(request, body)
    task = await run_in_threadpool(service(request).cancel, caller, _task_id_of(body))
    if task.status != TaskStatus.CANCEL.value:
        return JSONResponse(wire.ok_v1(None, f"task already finished with status {task.status}"))
    return JSONResponse(wire.ok_v1(None))


@router.post("/task/openapi/status", summary="Status of a task (v1, deprecated)")
async def status(request: Request) -> JSONResponse:
    body = await json_body(request)
    caller = await caller_from_body(request, body)
    task = await run_in_threadpool(service(request).get_task, caller, _task_id_of(body))
    return JSONResponse(wire.ok_v1(task.status, ""))


@router.post("/task/openapi/outputs", summary="Outputs of a task (v1, deprecated)")
async def outputs(request: Request) -> JSONResponse:
    body = await json_body(request)
    caller = await caller_from_body(request, body)
    svc = service(request)
    task = await run_in_threadpool(svc.get_task, caller, _task_id_of(body))
    if task.status == TaskStatus.RUNNING.value:
        return JSONResponse(
            {"code": 804, "msg": "APIKEY_TASK_IS_RUNNING", "data": {"netWssUrl": None}}
        )
    if task.status == TaskStatus.QUEUED.value:
        return JSONResponse({"code": 813, "msg": "APIKEY_TASK_IS_QUEUED", "data": None})
    if task.status != TaskStatus.SUCCESS.value:
        return JSONResponse(
            {
                "code": 805,
                "msg": "APIKEY_TASK_STATUS_ERROR",
                "data": {"failedReason": wire.failed_reason(task)},
            }
        )
    base = base_url(request)
    usage = wire.usage(task)
    files = [
        {
            "fileUrl": svc.result_url(base, item["key"]),
            "fileType": item["outputType"],
            "taskCostTime": usage["taskCostTime"],
            "nodeId": "",
            "thirdPartyConsumeMoney": None,
            "consumeMoney": usage["consumeMoney"],
            "consumeCoins": usage["consumeCoins"],
        }
        for item in task.results or []
    ]
    return JSONResponse(wire.ok_v1(files))
