"""How the client commands speak: JSON that always carries the taskId, exit codes, progress."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from reelgate.client import (
    APIError,
    ReelgateError,
    RequestValidationError,
    StillRunning,
    TaskError,
    TaskInfo,
    TaskStatus,
)

#: Exit codes: the task (or command) finished, failed, or is still running.
EXIT_DONE, EXIT_FAILED, EXIT_USAGE, EXIT_RUNNING, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def exit_code(info: TaskInfo) -> int:
    if info.status is TaskStatus.SUCCESS:
        return EXIT_DONE
    if info.status.is_terminal:
        return EXIT_FAILED
    return EXIT_RUNNING


def task_json(info: TaskInfo, files: list[Path] | None = None) -> dict[str, Any]:
    body = info.to_json()
    if info.progress is not None:
        body["progress"] = info.progress
    if files is not None:
        body["files"] = [str(f) for f in files]
    return body


def show_task(info: TaskInfo, files: list[Path] | None, as_json: bool) -> None:
    if as_json:
        print_json(task_json(info, files))
        return
    colour = {
        TaskStatus.SUCCESS: "green",
        TaskStatus.FAILED: "red",
        TaskStatus.CANCEL: "yellow",
    }.get(info.status, "cyan")
    line = f"task [bold]{info.task_id}[/bold]: [{colour}]{info.status.value}[/{colour}]"
    if info.error_code or info.error_message:
        line += f" [{info.error_code}] {info.error_message}"
    out.print(line)
    for path in files or []:
        out.print(f"  saved {path}")
    if files is None:
        for result in info.outputs:
            out.print(f"  {result.url or result.text}")
    if info.usage is not None and info.usage.coins is not None:
        out.print(f"  cost: {info.usage.coins} coins")


def fail(error: BaseException, as_json: bool, task_id: str | None = None) -> NoReturn:
    """Report an error (with the taskId when one exists) and exit with its code."""
    code = EXIT_FAILED
    if isinstance(error, StillRunning):
        code = EXIT_RUNNING
        task_id = error.task_id
    elif isinstance(error, TaskError):
        task_id = error.task_id
    elif isinstance(error, RequestValidationError):
        code = EXIT_USAGE
    elif isinstance(error, APIError):
        task_id = task_id or error.task_id
    if as_json:
        body: dict[str, Any] = {
            "taskId": task_id,
            "error": {"type": type(error).__name__, "message": str(error)},
        }
        if isinstance(error, TaskError | StillRunning):
            body.update(task_json(error.task))
            body["error"] = {"type": type(error).__name__, "message": str(error)}
        if isinstance(error, APIError):
            body["error"]["code"] = error.code
        print_json(body)
    else:
        err.print(f"[red]error:[/red] {error}")
        if isinstance(error, StillRunning):
            err.print(f"resume with: reelgate wait {error.task_id}")
    raise typer.Exit(code)


@contextmanager
def reported(as_json: bool, task_id: str | None = None) -> Iterator[None]:
    """Turn SDK errors into messages and exit codes; Ctrl-C into exit 130."""
    try:
        yield
    except ReelgateError as error:
        fail(error, as_json, task_id)
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None


class WaitDisplay:
    """A live progress bar for one task on a terminal; nothing otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and err.is_terminal
        self._progress: Progress | None = None
        self._bar: TaskID | None = None

    def __enter__(self) -> WaitDisplay:
        if self.enabled:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            )
            self._progress.start()
            self._bar = self._progress.add_task("submitting", total=100)
        return self

    def update(self, info: TaskInfo) -> None:
        if self._progress is None or self._bar is None:
            return
        done = 100.0 if info.status is TaskStatus.SUCCESS else (info.progress or 0.0) * 100
        self._progress.update(
            self._bar, description=f"{info.task_id} {info.status.value}", completed=done
        )

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
