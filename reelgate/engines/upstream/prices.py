"""What the upstream charges for a request reelgate's catalogue does not know.

With upstream routing on, a model path outside reelgate's catalogue is passed through: the
upstream's ``price-preview`` checks the body and prices it, in the API process, before the task is
written; its error codes reach the caller unchanged.
"""

from __future__ import annotations

import threading
from typing import Any

from reelgate.client import APIError, Client, NetworkError
from reelgate.config import Settings
from reelgate.core.errors import EngineUnavailable, UpstreamError
from reelgate.engines.upstream.engine import CALL_RETRY


class UpstreamPrices:
    def __init__(self, settings: Settings, *, client: Client | None = None) -> None:
        keys = settings.upstream_key_pool()
        if not settings.upstream_url or not keys:
            raise EngineUnavailable(
                "passing a model through to the upstream needs REELGATE_UPSTREAM_URL and "
                "REELGATE_UPSTREAM_KEYS"
            )
        self._client = client or Client(
            settings.upstream_url,
            keys[0],
            timeout=settings.upstream.timeout_seconds,
            retry=CALL_RETRY,
        )
        self._lock = threading.Lock()

    def coins(self, model_path: str, body: dict[str, Any]) -> int:
        """The price of ``body`` at ``model_path`` in RH coins, as the upstream says."""
        try:
            with self._lock:
                preview = self._client.price(model_path, body, verbatim=True)
        except APIError as error:
            raise UpstreamError(error.code, error.error_message) from None
        except NetworkError as error:
            raise EngineUnavailable(f"the upstream cannot price {model_path}: {error}") from None
        return round((preview.estimated_price or 0) * 100)

    def close(self) -> None:
        self._client.close()
