"""RunningHub answers, built as wire models from tasks and errors."""

from __future__ import annotations

from reelgate.core.errors import RateLimited, ReelgateError
from reelgate.core.status import TaskStatus
from reelgate.store.views import (
    ResultLinker,
    failed_reason,
    output_files,
    results,
    task_object,
    usage,
)
from reelgate.wire import Envelope, PricePreview, RateLimitedTask, TaskObject, UploadEnvelope

__all__ = [
    "ResultLinker",
    "error_task",
    "error_upload",
    "error_v1",
    "failed_reason",
    "output_files",
    "price",
    "price_error",
    "results",
    "task_object",
    "usage",
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
