"""Fault settings: what they accept, and decisions that are reproducible and exactly the rate."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from reelgate.core.errors import V2_MESSAGES
from reelgate.core.faults import Faults, draw, refuses


def test_defaults_mean_no_fault() -> None:
    assert not Faults().active
    assert Faults().to_stored() is None
    assert Faults.from_stored(None) is None
    assert Faults.from_stored({}) is None
    assert Faults.from_stored(Faults().model_dump()) is None


def test_a_set_fault_is_stored_and_read_back() -> None:
    faults = Faults(fail_rate=0.25, fail_code="1010", queue_delay_seconds=5)
    stored = faults.to_stored()
    assert stored is not None and stored["fail_code"] == "1010"
    assert Faults.from_stored(stored) == faults


@pytest.mark.parametrize(
    "values",
    [
        {"fail_rate": 1.5},
        {"fail_rate": -0.1},
        {"rate_limit_rate": float("nan")},
        {"webhook_fail_rate": 2},
        {"queue_delay_seconds": -1},
        {"webhook_delay_seconds": 10**9},
        {"fail_code": "9999"},
        {"fail_code": ""},
        {"no_such_fault": 1},
    ],
)
def test_values_out_of_range_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Faults.model_validate(values)


def test_fail_codes_are_runninghubs_documented_ones() -> None:
    for code in V2_MESSAGES:
        assert Faults(fail_code=code).failure().code == code
    error = Faults(fail_code="1006").failure()
    # The documented text exactly, as a real failure with that code carries.
    assert error.message == V2_MESSAGES["1006"]


def test_a_stored_value_this_version_cannot_read_leaves_the_key_normal() -> None:
    assert Faults.from_stored({"fail_rate": "lots"}) is None


def test_draws_are_fixed_by_task_and_kind_and_spread_over_zero_to_one() -> None:
    ids = range(7_000_000_000_000_000_000, 7_000_000_000_000_002_000)
    draws = [draw(i, "task") for i in ids]
    assert draws == [draw(i, "task") for i in ids]
    assert all(0 <= d < 1 for d in draws)
    assert draws != [draw(i, "webhook") for i in ids]
    below = sum(d < 0.25 for d in draws)
    assert 400 < below < 600  # about a quarter of 2000


def test_a_task_fails_exactly_when_its_draw_is_below_the_rate() -> None:
    ids = range(1, 500)
    for rate in (0.0, 0.25, 0.5, 1.0):
        faults = Faults(fail_rate=rate)
        assert {i for i in ids if faults.fails_task(i)} == {
            i for i in ids if draw(i, "task") < rate
        }
    assert all(Faults(fail_rate=1).fails_task(i) for i in ids)


def test_webhook_attempts_draw_apart() -> None:
    faults = Faults(webhook_fail_rate=0.5)
    outcomes = {faults.fails_webhook(42, attempt) for attempt in range(1, 40)}
    assert outcomes == {True, False}
    assert all(Faults(webhook_fail_rate=1).fails_webhook(42, a) for a in range(1, 10))
    assert not any(Faults(webhook_fail_rate=0).fails_webhook(42, a) for a in range(1, 10))


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.25, 1 / 3, 0.5, 0.9, 1.0])
def test_refusals_are_exactly_the_rate_and_evenly_spread(rate: float) -> None:
    refused = [refuses(rate, n) for n in range(1000)]
    for n in (1, 2, 3, 10, 99, 1000):
        assert sum(refused[:n]) == int(n * rate + 1e-9)
    if rate == 1.0:
        assert all(refused)
    if rate == 0.0:
        assert not any(refused)
    if rate == 0.5:
        assert refused[:6] == [False, True, False, True, False, True]
