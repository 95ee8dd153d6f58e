"""Log lines: JSON objects with the task being processed, exceptions as a field."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from reelgate.logs import (
    TEXT_FORMAT,
    JsonFormatter,
    TaskIdFilter,
    task_context,
    uvicorn_log_config,
)


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own with the handler ``configure_logging`` installs, writing to a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(TaskIdFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, buffer
    logger.removeHandler(handler)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_its_fields(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = captured
    logger.warning("disk %s is %d%% full", "data", 91)
    (line,) = lines(buffer)
    assert set(line) == {"time", "level", "logger", "message"}
    assert (line["level"], line["logger"], line["message"]) == (
        "WARNING",
        "tests.logs",
        "disk data is 91% full",
    )
    assert line["time"].endswith("Z")
    datetime.fromisoformat(line["time"].replace("Z", "+00:00"))


def test_lines_written_inside_a_task_carry_its_id_and_no_others(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = captured
    with task_context(2009191190196789249):
        logger.info("inside")
        # Another thread is not processing the task: its lines do not carry it.
        other = threading.Thread(target=lambda: logger.info("another thread"))
        other.start()
        other.join()
        with task_context(7):
            logger.info("nested")
        logger.info("inside again")
        logger.info("named", extra={"taskId": "42"})
    logger.info("after")
    task_ids = [line.get("taskId", "") for line in lines(buffer)]
    assert task_ids == ["2009191190196789249", "", "7", "2009191190196789249", "42", ""]


def test_an_exception_is_a_field_of_its_line(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = captured
    try:
        raise ValueError("broken frame\nsecond line")
    except ValueError:
        with task_context(5):
            logger.exception("task 5 crashed")
    (line,) = lines(buffer)
    assert line["message"] == "task 5 crashed"
    assert line["taskId"] == "5"
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert line["exception"].endswith("ValueError: broken frame\nsecond line")
    assert len(buffer.getvalue().splitlines()) == 1


def test_uvicorn_logs_through_the_root_handler_only_in_json() -> None:
    assert uvicorn_log_config("json") is None
    config = uvicorn_log_config("text")
    assert config is not None and "uvicorn" in config["loggers"]
    assert "%(message)s" in TEXT_FORMAT
