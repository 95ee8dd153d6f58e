"""RunningHub response bodies, built from tasks and errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reelgate.core.errors import ReelgateError
from reelgate.core.status import TaskStatus
from reelgate.store.tables import Task

#: Where a task's results point, given a storage key.
ResultLinker = Callable[[str], str]


def cost_seconds(task: Task) -> int:
    if task.started_at is None or task.finished_at is None:
        return 0
    return max(0, round((task.finished_at - task.started_at).total_seconds()))


def failed_reason(task: Task) -> dict[str, str]:
    """RunningHub's workflow-failure object, filled from the task's error."""
    return {
        "node_id": "",
        "node_name": "",
        "exception_type": task.error_code,
        "exception_message": task.error_message,
        "traceback": "",
        "current_inputs": "",
        "current_outputs": "",
    }


def results(task: Task, link: ResultLinker) -> list[dict[str, Any]] | None:
    if task.status != TaskStatus.SUCCESS.value or not task.results:
        return None
    return [
        {"url": link(item["key"]), "outputType": item["outputType"], "text": None, "nodeId": ""}
        for item in task.results
    ]


def task_v2(task: Task, link: ResultLinker) -> dict[str, Any]:
    """The flat v2 object of ``/openapi/v2/query`` and of every submit answer."""
    body: dict[str, Any] = {
        "taskId": str(task.id),
        "status": task.status,
        "errorCode": task.error_code,
        "errorMessage": task.error_message,
        "results": results(task, link),
        "clientId": "",
        "promptTips": "",
    }
    if task.status == TaskStatus.FAILED.value:
        body["failedReason"] = failed_reason(task)
    if task.status in (TaskStatus.SUCCESS.value, TaskStatus.FAILED.value, TaskStatus.CANCEL.value):
        body["usage"] = usage(task)
    return body


def usage(task: Task) -> dict[str, Any]:
    coins = task.consumed_coins or 0
    return {
        "consumeCoins": str(coins),
        "taskCostTime": str(cost_seconds(task)),
        "consumeMoney": f"{coins / 100:.2f}",
        "thirdPartyConsumeMoney": None,
    }


def error_v2(error: ReelgateError, task_id: str = "") -> dict[str, Any]:
    return {
        "taskId": task_id,
        "status": TaskStatus.FAILED.value,
        "errorCode": error.code,
        "errorMessage": error.message,
        "results": None,
        "clientId": "",
        "promptTips": "",
    }


def ok_v1(data: Any, msg: str = "success") -> dict[str, Any]:
    return {"code": 0, "msg": msg, "data": data}


def error_v1(error: ReelgateError) -> dict[str, Any]:
    return {"code": error.v1_code, "msg": error.v1_msg, "data": None, "errorMessage": error.message}


def ok_upload(data: Any) -> dict[str, Any]:
    """The v2 upload envelope: documented with ``message``, seen with ``msg``; we send both."""
    return {"code": 0, "message": "success", "msg": "success", "data": data, "errorMessages": None}


def error_upload(error: ReelgateError) -> dict[str, Any]:
    code = 401 if error.code == "1002" else int(error.code)
    message = f"ApiKey verification failed: {error.message}" if code == 401 else error.message
    return {"code": code, "message": message, "msg": message, "data": None, "errorMessages": None}


def price_v2(coins: int) -> dict[str, Any]:
    yuan = coins / 100
    return {
        "errorCode": "",
        "errorMessage": "",
        "estimatedPrice": round(yuan, 2),
        "currency": "CNY",
        "priceText": f"¥{yuan:.2f}/次",
        "priceTextEn": f"¥{yuan:.2f} per call",
        "freeLimit": 0,
        "freeLimitCount": 0,
        "remainingFreeLimitCount": 0,
        "isFreeThisCall": False,
    }


def price_error(error: ReelgateError) -> dict[str, Any]:
    return {
        "errorCode": error.code,
        "errorMessage": error.message,
        "estimatedPrice": None,
        "currency": "CNY",
        "priceText": "",
        "priceTextEn": "",
        "freeLimit": 0,
        "freeLimitCount": 0,
        "remainingFreeLimitCount": 0,
        "isFreeThisCall": False,
    }
