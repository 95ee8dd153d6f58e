"""Log lines as text (the default) or as one JSON object per line (``REELGATE_LOG_FORMAT=json``),
each carrying the id of the task being processed when it was written.

The worker sets the task around a task's processing (``task_context``), the webhook dispatcher
around a delivery, the sweeper around each task it moves. A filter on the handler copies it onto
every record, so that any line written meanwhile carries it, a library's included. A context
variable belongs to one thread: work handed to another thread does not carry the task unless
that thread sets it again.

A JSON line holds ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, ``taskId`` (a
string, as on the wire) while a task is processed, and ``exception`` (the traceback) when one is
logged. Python warnings and uncaught exceptions become such lines too, so that a log shipper can
parse every line.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_task_id: ContextVar[int | None] = ContextVar("reelgate_task_id", default=None)


@contextmanager
def task_context(task_id: int) -> Iterator[None]:
    """Lines logged in this thread inside the block carry ``task_id``."""
    token = _task_id.set(task_id)
    try:
        yield
    finally:
        _task_id.reset(token)


class TaskIdFilter(logging.Filter):
    """Sets ``record.taskId``: the task being processed by the thread that logged, or None."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "taskId", None) is None:  # a line may name its task itself (extra=)
            task_id = _task_id.get()
            record.taskId = None if task_id is None else str(task_id)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        task_id = getattr(record, "taskId", None)
        if task_id is not None:
            entry["taskId"] = str(task_id)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(log_format: LogFormat, level: int = logging.INFO) -> None:
    """Log to stderr in ``log_format``, at ``level`` and above (the commands' setup).

    Like ``logging.basicConfig``, this does nothing when the root logger already has handlers.
    """
    handler = logging.StreamHandler()
    handler.addFilter(TaskIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    # httpx logs every request at INFO: one line per poll of the demo, per webhook attempt, per
    # upstream call. Its warnings and errors still show; the operator's own lines stay readable.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))
    if log_format == "json":
        # Anything else written to stderr would be a line that is not JSON.
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread


def uvicorn_log_config(log_format: LogFormat) -> dict[str, Any] | None:
    """uvicorn's ``log_config``: its own (coloured) lines for text; for JSON none at all, so that
    its loggers (``uvicorn.error``, ``uvicorn.access``) reach the root's JSON handler."""
    if log_format == "json":
        return None
    from uvicorn.config import LOGGING_CONFIG

    return LOGGING_CONFIG


def _log_uncaught(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    logging.getLogger("reelgate").critical("uncaught exception", exc_info=(kind, error, traceback))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    thread = args.thread.name if args.thread is not None else "?"
    logging.getLogger("reelgate").critical(
        "uncaught exception in thread %s",
        thread,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
