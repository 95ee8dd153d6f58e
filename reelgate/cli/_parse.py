"""Command-line values the operator commands read: times and durations, task ids, statuses.

Each parser raises ``typer.BadParameter`` with a sentence naming the option, so a bad value
exits with code 2 and a message, before anything opens the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import typer

from reelgate.wire.status import TaskStatus

#: Seconds in each unit a duration may use: ``90s``, ``30m``, ``2h``, ``7d``, ``2w``, ``1h30m``.
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)([smhdw])")
_DURATION = re.compile(r"(?:\d+[smhdw])+")
#: Task ids are snowflakes stored in a signed 64-bit column.
MAX_TASK_ID = 2**63 - 1


def since(text: str, now: datetime, *, option: str = "'--since'") -> datetime:
    """An aware UTC time: ``now`` less a duration (``2h``), or an ISO 8601 time.

    An ISO time without an offset is UTC, as the server stores and shows times.
    """
    value = text.strip().lower().replace(" ", "")
    if _DURATION.fullmatch(value):
        seconds = sum(int(n) * UNITS[unit] for n, unit in _PART.findall(value))
        try:
            return now - timedelta(seconds=seconds)
        except OverflowError:
            raise typer.BadParameter(f"{text!r} reaches too far back", param_hint=option) from None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither a time (2026-11-30T08:00:00Z, 2026-11-30) nor a duration "
            "(90s, 30m, 2h, 7d, 1h30m)",
            param_hint=option,
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def task_id(text: str, *, option: str = "TASK_ID") -> int:
    """A task id: the 19-digit number a submit answered (``taskId``)."""
    value = text.strip()
    if not value.isdigit() or not value.isascii():
        raise typer.BadParameter(
            f"a task id is a number like 2013508786110042113, not {text!r}", param_hint=option
        )
    number = int(value)
    if number > MAX_TASK_ID:
        raise typer.BadParameter(f"no task id is as large as {value}", param_hint=option)
    return number


def statuses(values: Iterable[str], *, option: str = "'--status'") -> frozenset[TaskStatus]:
    """Task statuses, in any case; the wire's five values only."""
    known = ", ".join(status.value for status in TaskStatus)
    found: set[TaskStatus] = set()
    for value in values:
        try:
            found.add(TaskStatus(value.strip().upper()))
        except ValueError:
            raise typer.BadParameter(
                f"{value!r} is not a task status; use {known}", param_hint=option
            ) from None
    return frozenset(found)
