"""Client configuration as value objects: where to connect, how to retry, how to poll."""

from __future__ import annotations

import enum
import os
import random
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import httpx

from reelgate.client._errors import RequestValidationError

#: RunningHub's international and Chinese sites (a key only works on the site that issued it).
RUNNINGHUB_AI: Final = "https://www.runninghub.ai"
RUNNINGHUB_CN: Final = "https://www.runninghub.cn"
_RUNNINGHUB_HOSTS = frozenset(
    {"runninghub.ai", "www.runninghub.ai", "runninghub.cn", "www.runninghub.cn"}
)

BASE_URL_ENV: Final = "REELGATE_BASE_URL"
API_KEY_ENVS: Final = ("REELGATE_API_KEY", "RUNNINGHUB_API_KEY")

#: Per-request network timeouts (connect, read between bytes, write, pool).
DEFAULT_TIMEOUT: Final = httpx.Timeout(30.0, connect=10.0)
#: How long ``wait()`` waits when not told otherwise. RunningHub's own kit gives up after 10–30 min.
DEFAULT_WAIT_TIMEOUT: Final = 30 * 60.0
#: Uploaded files stay valid for one day; reuse them for a little less than that.
DEFAULT_UPLOAD_REUSE_SECONDS: Final = 23 * 3600.0


class UseClientDefault(enum.Enum):
    """The type of ``USE_CLIENT_DEFAULT``: 'not given', as opposed to ``None``."""

    USE_CLIENT_DEFAULT = enum.auto()


#: Marks an argument that was not given, so the client's setting applies (``None`` means "none").
USE_CLIENT_DEFAULT: Final = UseClientDefault.USE_CLIENT_DEFAULT


@dataclass(frozen=True)
class RetryPolicy:
    """How a call is repeated after a retryable failure.

    Delays grow exponentially from ``backoff`` to ``max_backoff`` with full jitter, a server's
    ``Retry-After`` is obeyed, and no call spends more than ``budget`` seconds retrying.
    Submits are repeated only when that cannot create a second task (see ``reelgate.client``).
    """

    max_attempts: int = 5
    budget: float = 60.0
    backoff: float = 0.5
    max_backoff: float = 8.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        if retry_after is not None:
            return max(0.0, retry_after)
        ceiling = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


DEFAULT_RETRY: Final = RetryPolicy()
#: A policy that never repeats a call.
NO_RETRY: Final = RetryPolicy(max_attempts=1)


@dataclass(frozen=True)
class PollPolicy:
    """How ``wait()`` spaces its queries.

    Queued tasks are polled slowly (from ``queued_initial`` growing to ``queued_max``), running
    ones faster (``running_initial`` to ``running_max``); each change of status starts over. A
    server's poll hint (``X-Reelgate-Poll-After``) replaces the computed delay, kept within
    ``min_interval``..``max_interval``. Up to ``max_consecutive_errors`` retryable failures in a
    row are tolerated before ``wait()`` gives up.
    """

    queued_initial: float = 2.0
    queued_max: float = 10.0
    running_initial: float = 1.0
    running_max: float = 5.0
    growth: float = 1.5
    min_interval: float = 0.1
    max_interval: float = 60.0
    max_consecutive_errors: int = 5


DEFAULT_POLL: Final = PollPolicy()


def resolve_base_url(base_url: str | None) -> str:
    """The argument, else ``REELGATE_BASE_URL``; a missing scheme or host is an error."""
    url = (base_url or os.environ.get(BASE_URL_ENV) or "").strip().rstrip("/")
    if not url:
        raise RequestValidationError(
            f"no server: pass base_url= (or --base-url) or set {BASE_URL_ENV}, "
            f"e.g. {RUNNINGHUB_AI}, {RUNNINGHUB_CN} or your reelgate server"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RequestValidationError(f"base URL must be http(s)://host[:port], got {url!r}")
    return url


class Secret:
    """A value that shows as ``***`` in reprs, logs and tracebacks; ``reveal()`` gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__


def resolve_api_key(api_key: str | None) -> Secret:
    """The argument, else ``REELGATE_API_KEY``, else ``RUNNINGHUB_API_KEY``."""
    key = api_key or next((os.environ[e] for e in API_KEY_ENVS if os.environ.get(e)), "")
    key = key.strip()
    if not key:
        raise RequestValidationError(
            "no API key: pass api_key= (or --api-key) or set REELGATE_API_KEY "
            "(or RUNNINGHUB_API_KEY)"
        )
    return Secret(key)


def is_runninghub(base_url: str) -> bool:
    """Whether the URL is RunningHub's cloud, which ignores ``Idempotency-Key``."""
    return (urlsplit(base_url).hostname or "").lower() in _RUNNINGHUB_HOSTS
