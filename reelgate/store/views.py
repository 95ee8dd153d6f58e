"""The wire's view of stored tasks: the v2 task object and the v1 output files of a task row.

Shared by the API (query answers) and the webhook dispatcher (the ``eventData`` of a task's
``TASK_END`` event), which must describe a task the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from reelgate.core.status import TaskStatus
from reelgate.store.tables import Task, WebhookDelivery
from reelgate.wire import FailedReason, OutputFile, ResultItem, TaskObject, Usage
from reelgate.wire.webhooks import CallbackStatus, WebhookDetail

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


def webhook_detail(delivery: WebhookDelivery, masked_key: str) -> WebhookDetail:
    """``data`` of getWebhookDetail: the event, where it goes and how its delivery went."""
    return WebhookDetail(
        id=str(delivery.id),
        user_api_key=masked_key,
        task_id=str(delivery.task_id),
        webhook_url=delivery.url,
        event_data=delivery.event_data or "",
        callback_status=cast(CallbackStatus, delivery.status),
        callback_response=delivery.last_response,
        retry_count=max(0, delivery.attempts - 1),
        create_time=delivery.created_at.isoformat(timespec="seconds"),
        update_time=delivery.updated_at.isoformat(timespec="seconds"),
    )
