"""The operator commands' value parsers: times and durations, task ids, statuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import typer

from reelgate.cli import _parse
from reelgate.wire.status import TaskStatus

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "ago"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        (" 2H ", timedelta(hours=2)),
        ("0s", timedelta(0)),
    ],
)
def test_a_duration_counts_back_from_now(text: str, ago: timedelta) -> None:
    assert _parse.since(text, NOW) == NOW - ago


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-11-29T08:00:00Z", datetime(2026, 11, 29, 8, tzinfo=UTC)),
        ("2026-11-29T10:00:00+02:00", datetime(2026, 11, 29, 8, tzinfo=UTC)),
        ("2026-11-29 08:00", datetime(2026, 11, 29, 8, tzinfo=UTC)),  # no offset: UTC
        ("2026-11-29", datetime(2026, 11, 29, tzinfo=UTC)),
    ],
)
def test_an_iso_time_is_read_as_utc_unless_it_says(text: str, moment: datetime) -> None:
    assert _parse.since(text, NOW) == moment


@pytest.mark.parametrize("text", ["", "yesterday", "2 hours", "-2h", "2x", "h", "2026-13-01"])
def test_anything_else_is_refused_with_the_forms_it_takes(text: str) -> None:
    with pytest.raises(typer.BadParameter, match=r"neither a time .* nor a duration"):
        _parse.since(text, NOW)


def test_a_duration_past_the_calendar_is_refused() -> None:
    with pytest.raises(typer.BadParameter, match="too far back"):
        _parse.since("99999999999999d", NOW)


def test_task_ids_are_numbers_that_fit_the_column() -> None:
    assert _parse.task_id(" 2013508786110042113 ") == 2013508786110042113
    assert _parse.task_id(str(2**63 - 1)) == 2**63 - 1
    for text in ["", "abc", "12ab", "-5", "1.5", "١٢٣"]:  # the last: Arabic-Indic digits
        with pytest.raises(typer.BadParameter, match="a task id is a number"):
            _parse.task_id(text)
    with pytest.raises(typer.BadParameter, match="no task id is as large"):
        _parse.task_id(str(2**63))


def test_statuses_in_any_case_and_only_the_wires() -> None:
    assert _parse.statuses(["queued", "RUNNING", "Cancel", "queued"]) == {
        TaskStatus.QUEUED,
        TaskStatus.RUNNING,
        TaskStatus.CANCEL,
    }
    assert _parse.statuses([]) == frozenset()
    with pytest.raises(typer.BadParameter, match="'DONE' is not a task status; use QUEUED"):
        _parse.statuses(["queued", "DONE"])
