"""``reelgate tasks``: the operator's view of every key's tasks: list them, cancel them.

Both commands read the database directly (``REELGATE_DATABASE_URL``), like ``reelgate keys``;
the logic is ``Service.list_tasks`` and ``Service.cancel_tasks``. Exit codes: 0 done, 1 a task
id named no task, 2 invalid input.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table

from reelgate.cli import _parse
from reelgate.cli._service import open_service
from reelgate.wire.status import TaskStatus

if TYPE_CHECKING:
    from reelgate.admin import CancelSummary, ListedTask

#: ``admin.MAX_TASK_LISTING``, repeated so that the option's range needs no server import.
MAX_LISTING = 10_000

tasks_app = typer.Typer(
    help="List and cancel tasks across keys (the operator's view).", no_args_is_help=True
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key", help="One key's tasks: the key, its prefix or its id.", show_default=False
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _refuse(message: str) -> typer.Exit:
    err_console.print(f"error: {message}")
    return typer.Exit(2)


@tasks_app.command("list")
def tasks_list(
    key: KeyOption = None,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            help="Tasks in this status (repeatable): QUEUED, RUNNING, SUCCESS, FAILED, CANCEL.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="One model's tasks, e.g. kling-video-o3-pro/image-to-video.",
            show_default=False,
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Created since a time (ISO 8601; UTC unless it says) or in the last 90s, 30m, "
            "2h, 7d.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=MAX_LISTING, help="The most tasks shown.")
    ] = 50,
    as_json: Json = False,
) -> None:
    """Tasks of every key, newest first: status, coins, times and error codes."""
    from reelgate.admin import TaskFilter
    from reelgate.core.errors import InvalidParameters

    filters = TaskFilter(
        key=key,
        statuses=_parse.statuses(status or []),
        model=model,
        since=_parse.since(since, datetime.now(UTC)) if since is not None else None,
        limit=limit,
    )
    with open_service() as service:
        try:
            rows = service.list_tasks(filters)
        except InvalidParameters as error:
            raise _refuse(error.detail or error.message) from None
    if as_json:
        print(json.dumps([task_json(row) for row in rows]))
        return
    if not rows:
        console.print("no tasks match")
        return
    table = Table(
        Column("id", no_wrap=True),
        "key",
        "model",
        "status",
        "coins",
        "created",
        "finished",
        "error",
    )
    for row in rows:
        task = row.task
        charged = task.consumed_coins
        table.add_row(
            str(task.id),
            f"{row.key_prefix} {row.key_name}",
            task.model,
            task.status,
            f"held {task.reserved_coins}" if charged is None else f"charged {charged}",
            _when(task.created_at),
            _when(task.finished_at),
            task.error_code,
        )
    # Piped or redirected, each task stays on one line (for grep and the like), however wide.
    (console if console.is_terminal else Console(width=400, soft_wrap=True)).print(table)
    if len(rows) == limit:
        err_console.print(f"(the newest {limit}; there may be more: raise --limit)")


@tasks_app.command("cancel")
def tasks_cancel(
    task_ids: Annotated[
        list[str] | None,
        typer.Argument(help="Ids of the tasks to cancel.", show_default=False),
    ] = None,
    key: KeyOption = None,
    all_queued: Annotated[
        bool, typer.Option("--all-queued", help="Every key's queued tasks.")
    ] = False,
    running: Annotated[
        bool,
        typer.Option(
            "--running", help="Running tasks too (their workers stop at their next heartbeat)."
        ),
    ] = False,
    as_json: Json = False,
) -> None:
    """Cancel tasks with full refunds: one key's (--key), every key's (--all-queued) or by id.

    Only QUEUED tasks, unless --running is given.
    """
    from reelgate.core.errors import InvalidParameters

    ids = [_parse.task_id(text) for text in task_ids or []]
    chosen = (key is not None) + all_queued + bool(ids)
    if chosen == 0:
        raise _refuse("say which tasks to cancel: --key KEY, --all-queued, or task ids")
    if chosen > 1:
        raise _refuse("give only one of --key, --all-queued and task ids")
    statuses = (TaskStatus.QUEUED, TaskStatus.RUNNING) if running else (TaskStatus.QUEUED,)
    with open_service() as service:
        try:
            summary = service.cancel_tasks(
                key=key, every_key=all_queued, task_ids=ids or None, statuses=statuses
            )
        except InvalidParameters as error:
            raise _refuse(error.detail or error.message) from None
    if as_json:
        print(json.dumps(summary_json(summary)))
    else:
        show_summary(summary, running=running)
    if any(status is None for status in summary.skipped.values()):
        raise typer.Exit(1)


def summary_json(summary: CancelSummary) -> dict[str, Any]:
    return {
        "cancelled": len(summary.cancelled),
        "queued": summary.queued,
        "running": summary.running,
        "coinsRefunded": summary.refunded,
        "taskIds": [str(task_id) for task_id in summary.cancelled],
        "skipped": [
            {"taskId": str(task_id), "status": status.value if status else None}
            for task_id, status in summary.skipped.items()
        ],
    }


def summary_text(summary: CancelSummary) -> str:
    count = len(summary.cancelled)
    return (
        f"cancelled {count} task{'' if count == 1 else 's'} ({summary.queued} queued, "
        f"{summary.running} running); {summary.refunded} coins refunded"
    )


def show_summary(summary: CancelSummary, *, running: bool) -> None:
    console.print(summary_text(summary))
    for task_id, status in summary.skipped.items():
        if status is None:
            err_console.print(f"no task {task_id}")
        elif status is TaskStatus.RUNNING and not running:
            console.print(f"task {task_id} is RUNNING: add --running to cancel it")
        else:
            console.print(f"task {task_id} is {status.value}: left as it is")


def task_json(row: ListedTask) -> dict[str, Any]:
    task = row.task
    return {
        "taskId": str(task.id),
        "keyId": task.api_key_id,
        "keyName": row.key_name,
        "keyPrefix": row.key_prefix,
        "model": task.model,
        "status": task.status,
        "reservedCoins": task.reserved_coins,
        "chargedCoins": task.consumed_coins,
        "attempts": task.attempts,
        "createdAt": _iso(task.created_at),
        "startedAt": _iso(task.started_at),
        "finishedAt": _iso(task.finished_at),
        "errorCode": task.error_code,
        "errorMessage": task.error_message,
    }


def _iso(moment: datetime | None) -> str | None:
    """A stored (naive UTC) time as ISO 8601 with its offset."""
    return moment.replace(tzinfo=UTC).isoformat() if moment is not None else None


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else ""
