"""Key administration through the service: creating with checked amounts, disabling one key."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from reelgate.core.errors import InvalidParameters
from reelgate.runtime import Runtime
from reelgate.service import Service
from reelgate.store.tables import ApiKey


def set_prefix(runtime: Runtime, key_id: int, prefix: str) -> None:
    with runtime.db.write() as session:
        session.execute(update(ApiKey).where(ApiKey.id == key_id).values(key_prefix=prefix))


def disabled_ids(service: Service) -> list[int]:
    return [key.id for key in service.list_keys() if key.disabled]


def test_create_takes_the_settings_defaults(runtime: Runtime) -> None:
    key = Service(runtime).create_key("ci")
    assert (key.coins, key.concurrency) == (
        runtime.settings.default_key_coins,
        runtime.settings.default_key_concurrency,
    )
    assert len(key.api_key) == 32


@pytest.mark.parametrize(
    ("amounts", "why"),
    [
        ({"concurrency": 0}, "concurrency must be at least 1"),
        ({"concurrency": -2}, "concurrency must be at least 1"),
        ({"coins": -1}, "coins cannot be negative"),
        # Beyond BIGINT: refused here, not by the database (or the driver) as a raw error.
        ({"coins": 2**63}, "coins must be at most 9223372036854775807"),
        ({"concurrency": 10_001}, "concurrency must be at most 10000"),
    ],
)
def test_create_refuses_impossible_amounts(
    runtime: Runtime, amounts: dict[str, int], why: str
) -> None:
    service = Service(runtime)
    with pytest.raises(InvalidParameters, match=why):
        service.create_key("ci", coins=amounts.get("coins"), concurrency=amounts.get("concurrency"))
    assert service.list_keys() == []


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "cannot be empty"),
        ("   ", "cannot be empty"),
        ("x" * 201, "201 characters long; at most 200"),
        ("two\nlines", "control characters"),
    ],
)
def test_create_refuses_a_name_that_cannot_be_shown_or_stored(
    runtime: Runtime, name: str, why: str
) -> None:
    service = Service(runtime)
    with pytest.raises(InvalidParameters, match=why):
        service.create_key(name)
    assert service.list_keys() == []


def test_the_largest_amounts_and_a_trimmed_name_are_stored(runtime: Runtime) -> None:
    service = Service(runtime)
    key = service.create_key(" " + "x" * 200 + " ", coins=2**63 - 1, concurrency=10_000)
    (stored,) = service.list_keys()
    assert (stored.name, stored.coins, stored.concurrency) == ("x" * 200, 2**63 - 1, 10_000)
    assert key.name == "x" * 200


def test_a_zero_balance_is_allowed(runtime: Runtime) -> None:
    assert Service(runtime).create_key("empty", coins=0).coins == 0


def test_disable_by_the_key_its_prefix_or_its_id(runtime: Runtime) -> None:
    service = Service(runtime)
    a, b, c = (service.create_key(name) for name in "abc")
    assert service.disable_key(a.api_key).key.id == a.id
    assert service.disable_key(b.api_key[:6]).key.id == b.id
    assert service.disable_key(f" {c.id} ").key.id == c.id
    assert disabled_ids(service) == [a.id, b.id, c.id]


def test_an_all_digit_prefix_is_a_prefix_before_it_is_an_id(runtime: Runtime) -> None:
    service = Service(runtime)
    first, second = service.create_key("first"), service.create_key("second")
    digits = str(second.id).zfill(6)  # the prefix of one key spells the id of the other
    set_prefix(runtime, first.id, digits)
    disabled = service.disable_key(digits).key
    assert (disabled.id, disabled.disabled) == (first.id, True)
    assert disabled_ids(service) == [first.id]
    # An all-digit name that is no key's prefix is an id.
    assert service.disable_key(str(second.id)).key.id == second.id


def test_a_shared_prefix_disables_nothing(runtime: Runtime) -> None:
    service = Service(runtime)
    first, second = service.create_key("first"), service.create_key("second")
    set_prefix(runtime, first.id, "abc123")
    set_prefix(runtime, second.id, "abc123")
    with pytest.raises(InvalidParameters, match=rf"2 keys start with 'abc123' \(ids {first.id}, "):
        service.disable_key("abc123")
    assert disabled_ids(service) == []
    assert service.disable_key(second.api_key).key.id == second.id  # the key itself is unambiguous


@pytest.mark.parametrize("name", ["", "zzzzzz", "999999999", "1234567890123", "abc"])
def test_a_name_that_matches_no_key_disables_nothing(runtime: Runtime, name: str) -> None:
    service = Service(runtime)
    service.create_key("only")
    with pytest.raises(InvalidParameters, match="no key matches"):
        service.disable_key(name)
    assert disabled_ids(service) == []
