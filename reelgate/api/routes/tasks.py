"""Task endpoints: v2 query, and the v1 cancel / status / outputs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from reelgate.api import answers
from reelgate.api.deps import (
    Credentials,
    base_url,
    bearer_key,
    body_or_refusal,
    task_id_text,
    v1_body_and_caller,
)
from reelgate.api.deps import service as service_of
from reelgate.api.openapi import error_codes
from reelgate.api.openapi import json_body as body_doc
from reelgate.core.errors import InvalidApiKey, RateLimited
from reelgate.core.status import TaskStatus
from reelgate.service import Service
from reelgate.store.tables import Task
from reelgate.wire import Envelope, KeyedTaskRef, OutputFile, TaskObject, TaskRef

router = APIRouter(tags=["tasks"])

#: Poll hints (seconds) sent in ``X-Reelgate-Poll-After``; RunningHub clients ignore them.
POLL_AFTER = {TaskStatus.QUEUED.value: "1", TaskStatus.RUNNING.value: "1"}


def task_answer(task: Task, svc: Service, base: str, response: Response) -> TaskObject:
    """The task object, with reelgate's poll hints in headers while it is not done."""
    if task.status in POLL_AFTER:
        response.headers["X-Reelgate-Poll-After"] = POLL_AFTER[task.status]
        response.headers["X-Reelgate-Progress"] = f"{task.progress:.3f}"
    return answers.task_object(task, lambda key: svc.result_url(base, key))


def _task_id_of(body: Any) -> Any:
    return body.get("taskId") if isinstance(body, dict) else None


async def _keyed_task(request: Request, credentials: Credentials) -> tuple[Service, Task]:
    """The task a v1 body names, for the key the body (or the Bearer header) carries."""
    body, caller = await v1_body_and_caller(request, credentials)
    svc = service_of(request)
    return svc, await run_in_threadpool(svc.get_task, caller, _task_id_of(body))


@router.post(
    "/openapi/v2/query",
    summary="Query a task (v2)",
    description="The task's status, results and usage." + error_codes("1002", "1004", "1007"),
    response_model=TaskObject,
    openapi_extra=body_doc(TaskRef),
)
async def query(
    request: Request, response: Response, api_key: Annotated[str | None, Depends(bearer_key)]
) -> TaskObject:
    body, refused = await body_or_refusal(request)
    task_id = _task_id_of(body)
    request.state.task_id = str(task_id) if isinstance(task_id, (str, int)) else ""
    svc = service_of(request)
    try:
        # The key, its rate limit and the task in one call: one hop to a thread.
        task = await run_in_threadpool(svc.query, api_key, task_id, refused=refused)
    except InvalidApiKey:
        request.state.task_id = ""  # answered as when the key is refused before the body
        raise
    except RateLimited:
        request.state.task_id = task_id_text(body)  # as ``deps.authenticate`` names it
        raise
    return task_answer(task, svc, base_url(request), response)


@router.post(
    "/task/openapi/cancel",
    summary="Cancel a queued or running task (v1)",
    description="A running task stops at its next check; its coins are refunded."
    + error_codes("1002", "1004"),
    response_model=Envelope[None],
    openapi_extra=body_doc(KeyedTaskRef),
)
async def cancel(request: Request, credentials: Credentials) -> Envelope[None]:
    body, caller = await v1_body_and_caller(request, credentials)
    task = await run_in_threadpool(service_of(request).cancel, caller, _task_id_of(body))
    if task.status != TaskStatus.CANCEL.value:
        return Envelope(msg=f"task already finished with status {task.status}")
    return Envelope()


@router.post(
    "/task/openapi/status",
    summary="Status of a task (v1, deprecated)",
    response_model=Envelope[TaskStatus],
    openapi_extra=body_doc(KeyedTaskRef),
)
async def status(request: Request, credentials: Credentials) -> Envelope[TaskStatus]:
    _svc, task = await _keyed_task(request, credentials)
    return Envelope(msg="", data=TaskStatus(task.status))


OutputsAnswer = Envelope[list[OutputFile]] | Envelope[dict[str, Any]]


@router.post(
    "/task/openapi/outputs",
    summary="Outputs of a task (v1, deprecated)",
    description="`code` 804 while running, 813 while queued, 805 when it failed or was cancelled.",
    response_model=OutputsAnswer,
    openapi_extra=body_doc(KeyedTaskRef),
)
async def outputs(request: Request, credentials: Credentials) -> OutputsAnswer:
    svc, task = await _keyed_task(request, credentials)
    if task.status == TaskStatus.RUNNING.value:
        return Envelope(code=804, msg="APIKEY_TASK_IS_RUNNING", data={"netWssUrl": None})
    if task.status == TaskStatus.QUEUED.value:
        return Envelope(code=813, msg="APIKEY_TASK_IS_QUEUED")
    if task.status != TaskStatus.SUCCESS.value:
        reason = answers.failed_reason(task).to_wire()
        return Envelope(code=805, msg="APIKEY_TASK_STATUS_ERROR", data={"failedReason": reason})
    base = base_url(request)
    return Envelope(data=answers.output_files(task, lambda key: svc.result_url(base, key)))
