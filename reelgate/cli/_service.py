"""The service the operator commands call, over a runtime opened from the environment."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from reelgate.config import Settings

if TYPE_CHECKING:
    from reelgate.service import Service


@contextmanager
def open_service() -> Iterator[Service]:
    """The service over a runtime opened (and migrated) from the environment's settings."""
    # Imported here: ``reelgate --help`` and the client commands never load the server.
    from reelgate.runtime import Runtime
    from reelgate.service import Service

    runtime = Runtime.open(Settings())
    try:
        yield Service(runtime)
    finally:
        runtime.close()
