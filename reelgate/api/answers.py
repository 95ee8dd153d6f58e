"""RunningHub answers, built as wire models from tasks and errors."""

from __future__ import annotations

from collections.abc import Callable

from reelgate.core.errors import RateLimited, ReelgateError
from reelgate.core.status import TaskStatus
from reelgate.store.tables import Task
from reelgate.wire import (
    Envelope,
    FailedReason,
    OutputFile,
    PricePreview,
    RateLimitedTask,
    ResultItem,
    TaskObject,
    UploadEnvelope,
    Usage,
)

#: Where a task's results point, given a storage key.
ResultLinker = Callable[[str], str]


def cost_seconds(task: Task) -> int:
    if task.started_at is None or task.finished_at is None:
        return 0
    return max(0, round((task.finished_at - task.started_at).total_seconds()))


def failed_reason(task: Task) -> FailedReason:
    """RunningHub's workflow-failure object, filled from the task's error."""
    return FailedReason(exception_type=task.error_code, exception_message=task.error_message)


def results(task: Task, link: ResultLinker) -> list[ResultItem] | None:
    if task.status != TaskStatus.SUCCESS.value or not task.results:
        return None
    return [
        ResultItem(url=link(item["key"]), output_type=item["outputType"]) for item in task.results
    ]


def task_object(task: Task, link: ResultLinker) -> TaskObject:
    """The flat v2 object of ``/openapi/v2/query`` and of every submit answer."""
    status = TaskStatus(task.status)
    return TaskObject(
        task_id=str(task.id),
        status=status,
        error_code=task.error_code,
        error_message=task.error_message,
        results=results(task, link),
        failed_reason=failed_reason(task) if status is TaskStatus.FAILED else None,
        usage=usage(task) if status.is_terminal else None,
    )


def usage(task: Task) -> Usage:
    coins = task.consumed_coins or 0
    return Usage(
        consume_coins=str(coins),
        task_cost_time=str(cost_seconds(task)),
        consume_money=f"{coins / 100:.2f}",
    )


def output_files(task: Task, link: ResultLinker) -> list[OutputFile]:
    """The items of the deprecated ``/task/openapi/outputs``."""
    spent = usage(task)
    return [
        OutputFile(
            file_url=link(item["key"]),
            file_type=item["outputType"],
            task_cost_time=spent.task_cost_time,
            consume_money=spent.consume_money,
            consume_coins=spent.consume_coins,
        )
        for item in task.results or []
    ]


def error_task(error: ReelgateError, task_id: str = "") -> TaskObject | RateLimitedTask:
    """A refused v2 request: the task object's shape, FAILED, with the error's code.

    A rate-limited request says nothing about the task (``RateLimitedTask``): FAILED would end
    the polling of a client asking about a task that is in fact running.
    """
    if isinstance(error, RateLimited):
        return RateLimitedTask(task_id=task_id, error_message=error.message)
    return TaskObject(
        task_id=task_id,
        status=TaskStatus.FAILED,
        error_code=error.code,
        error_message=error.message,
    )


def error_v1(error: ReelgateError) -> Envelope[None]:
    return Envelope(code=error.v1_code, msg=error.v1_msg, error_message=error.message)


def error_upload(error: ReelgateError) -> UploadEnvelope[None]:
    code = 401 if error.code == "1002" else int(error.code) if error.code.isdigit() else 1000
    message = f"ApiKey verification failed: {error.message}" if code == 401 else error.message
    return UploadEnvelope(code=code, message=message, msg=message)


def price(coins: int) -> PricePreview:
    yuan = coins / 100
    return PricePreview(
        estimated_price=round(yuan, 2),
        price_text=f"¥{yuan:.2f}/次",
        price_text_en=f"¥{yuan:.2f} per call",
    )


def price_error(error: ReelgateError) -> PricePreview:
    return PricePreview(error_code=error.code, error_message=error.message)
