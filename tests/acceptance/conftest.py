"""Fixtures of the acceptance tests that need more than ``tests/conftest.py`` gives."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import _fresh_postgres_database


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres)])
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database, for the tests that are about PostgreSQL alone (row locks,
    connections that die): marked ``postgres`` like ``db_url``'s PostgreSQL half."""
    yield from _fresh_postgres_database()
