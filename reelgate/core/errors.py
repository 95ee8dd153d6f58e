"""reelgate's exception tree. Each error carries the RunningHub code it answers with.

    ReelgateError                    (1000, "Unknown error")
    ├── InvalidApiKey                (1002; v1 802)
    │   └── AdminOnly                (1002, HTTP 403: the dashboard's admin views)
    ├── RateLimited                  (1003; HTTP 429 with Retry-After)
    ├── TaskNotFound                 (1004; v1 807)
    ├── WebhookNotFound              (1004; v1 1 "webhook event not exists")
    ├── InternalError                (1005)
    ├── TaskTimedOut                 (1006)
    ├── InvalidParameters            (1007; v1 301)
    │   └── UnknownModel             (no model at that path)
    ├── InvalidUrl                   (1001)
    │   ├── LinkRefused              (a signed file link is not valid; .reason)
    │   └── LinkedFileMissing        (a valid file link whose file is not stored)
    ├── FileTooLarge                 (1008; v1 809)
    ├── FileProcessingFailed         (1013)
    ├── InsufficientBalance          ("416", as RunningHub's v1 wallet error)
    ├── QueueFull                    (421 TASK_QUEUE_MAXED)
    ├── GenerationFailed             (1015)
    ├── InvalidTransition            (a status change the task lifecycle does not allow)
    ├── TaskCancelled                (raised inside a render when its owner cancelled)
    ├── EngineError                  (1015)
    │   ├── EngineUnavailable        (1010)
    │   └── RenderFailed             (1015)
    ├── StorageError                 (1005)
    ├── UpstreamError                (the upstream's own code and message, passed on unchanged)
    ├── NotReady                     (1010: the database or the storage does not answer; .reason)
    └── StoreError                   (1005: the database failed)
        ├── Conflict                 (1005: a write broke a constraint, e.g. a duplicate key)
        └── StoreUnavailable         (1010: the database is unreachable or busy; retry later)

Domain code raises these; exactly one place (``reelgate.api.errors``) turns them into the
RunningHub body of the path at hand. The message of an error defaults to RunningHub's documented
English text for its code; a ``detail`` says what exactly was wrong.
"""

from __future__ import annotations

from typing import ClassVar

#: RunningHub's documented v2 messages (contract §8.2).
V2_MESSAGES: dict[str, str] = {
    "1000": "Unknown error, please retry or contact support",
    "1001": "Invalid URL, please check your link",
    "1002": "Invalid API Key, please check your credentials",
    "1003": "Rate limit exceeded, please slow down requests",
    "1004": "Task not found, please check the task ID",
    "1005": "Internal server error, please retry later",
    "1006": "Task execution timed out, please retry",
    "1007": "Invalid parameters, please check your input",
    "1008": "File size limit exceeded",
    "1009": "HTTP method not supported, please check documentation",
    "1010": "Service unavailable, please retry later",
    "1011": "System is currently busy, please retry later",
    "1012": "Service response exception, please contact support or retry later",
    "1013": "File processing failed, please check the URL or retry",
    "1014": "Access Denied: Standard Model API is restricted to Enterprise-Shared API Keys only.",
    "1015": "Generation failed, please try again.",
    "416": "Insufficient balance (TASK_CREATE_FAILED_BY_NOT_ENOUGH_WALLET)",
    "421": "Task queue is full (TASK_QUEUE_MAXED), please retry later",
}


class ReelgateError(Exception):
    """Unknown error, please retry or contact support"""

    #: The v2 ``errorCode`` (a string, as RunningHub sends it).
    code: str = "1000"
    #: The v1 ``code`` and ``msg``.
    v1_code: ClassVar[int] = 500
    v1_msg: ClassVar[str] = "UNKNOWN_ERROR"
    #: The HTTP status of the answer: business errors travel with 200 (contract §1); only a
    #: failure of the server itself is a 5xx, which every RunningHub client retries.
    http_status: ClassVar[int] = 200

    def __init__(self, detail: str | None = None, *, task_id: str | None = None) -> None:
        self.detail = detail
        self.task_id = task_id
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """RunningHub's text for the code, followed by what exactly was wrong."""
        base = V2_MESSAGES.get(self.code) or (self.__doc__ or "").strip()
        return f"{base}: {self.detail}" if self.detail else base


class InvalidUrl(ReelgateError):
    code = "1001"
    v1_code, v1_msg = 301, "PARAMS_INVALID"


class LinkRefused(InvalidUrl):
    """A signed file link is not valid: no expiry, a signature that does not match, or expired."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        #: Why, in words fit for the link's holder ("link expired at …").
        self.reason = reason


class LinkedFileMissing(InvalidUrl):
    """A file link with a valid signature names no stored file."""


class InvalidApiKey(ReelgateError):
    code = "1002"
    v1_code, v1_msg = 802, "APIKEY_UNAUTHORIZED"


class AdminOnly(InvalidApiKey):
    """This needs an admin key.

    Only the dashboard's own endpoints raise it (never a RunningHub path), with HTTP 403: the key
    is good, it is just not allowed this.
    """

    http_status = 403

    @property
    def message(self) -> str:
        # Not 1002's "Invalid API Key" text: the key is valid.
        base = "This needs an admin key"
        return f"{base}: {self.detail}" if self.detail else f"{base}."


class RateLimited(ReelgateError):
    """Too many requests of one key; nothing was done.

    Answered with HTTP 429 and ``Retry-After`` rather than RunningHub's usual 200: RunningHub's
    clients retry a 429 after a pause, whereas a 200 with an error code reads as the end of the
    task they are polling (docs/compatibility.md).
    """

    code = "1003"
    v1_code, v1_msg = 421, "TASK_QUEUE_MAXED"
    http_status = 429

    def __init__(self, detail: str | None = None, *, retry_after: float = 1.0) -> None:
        super().__init__(detail)
        #: Seconds until the key's window frees up (the answer's ``Retry-After``).
        self.retry_after = retry_after


class TaskNotFound(ReelgateError):
    code = "1004"
    v1_code, v1_msg = 807, "APIKEY_TASK_NOT_FOUND"


class InternalError(ReelgateError):
    code = "1005"


class TaskTimedOut(ReelgateError):
    code = "1006"


class InvalidParameters(ReelgateError):
    code = "1007"
    v1_code, v1_msg = 301, "PARAMS_INVALID"


class UnknownModel(InvalidParameters):
    """No model is served at this path."""

    def __init__(self, model_path: str) -> None:
        super().__init__(f"unknown model {model_path!r}")


class WebhookNotFound(ReelgateError):
    """No webhook event: the task has no ``webhookUrl``, has not ended yet, or the id is unknown.

    v1 ``code 1`` as RunningHub answers getWebhookDetail for a task without a webhook.
    """

    code = "1004"
    v1_code, v1_msg = 1, "webhook event not exists"


class FileTooLarge(ReelgateError):
    code = "1008"
    v1_code, v1_msg = 809, "APIKEY_FILE_SIZE_EXCEEDED"


class FileProcessingFailed(ReelgateError):
    code = "1013"
    v1_code, v1_msg = 808, "APIKEY_UPLOAD_FAILED"


class InsufficientBalance(ReelgateError):
    code = "416"
    v1_code, v1_msg = 416, "TASK_CREATE_FAILED_BY_NOT_ENOUGH_WALLET"


class QueueFull(ReelgateError):
    code = "421"
    v1_code, v1_msg = 421, "TASK_QUEUE_MAXED"


class GenerationFailed(ReelgateError):
    code = "1015"


class InvalidTransition(ReelgateError):
    """A status change that the task lifecycle does not allow (a programming error)."""

    code = "1005"


class TaskCancelled(ReelgateError):
    """The task was cancelled by its owner while it was running."""

    code = "1015"


class EngineError(ReelgateError):
    code = "1015"


class EngineUnavailable(EngineError):
    code = "1010"


class RenderFailed(EngineError):
    code = "1015"


class StorageError(ReelgateError):
    code = "1005"


class NotReady(ReelgateError):
    """The server cannot take requests: its database or its storage does not answer."""

    code = "1010"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        #: What does not answer and why (the driver's or the storage's own words), for the
        #: operator's readiness probe.
        self.reason = reason


class UpstreamError(ReelgateError):
    """The upstream answered with an error; its code and message reach the user unchanged."""

    def __init__(self, code: str, message: str, *, task_id: str | None = None) -> None:
        self.code = code or "1000"
        self._message = message or V2_MESSAGES.get(self.code, "")
        super().__init__(task_id=task_id)

    @property
    def message(self) -> str:
        return self._message


class StoreError(ReelgateError):
    """The database failed.

    ``reelgate.store`` raises these in place of SQLAlchemy's errors (the original is the
    ``__cause__``); their details never carry the driver's text, which may quote SQL and values.
    """

    code = "1005"
    http_status = 500


class Conflict(StoreError):
    """A write broke a database constraint: a duplicate key, most often."""

    code = "1005"


class StoreUnavailable(StoreError):
    """The database could not be reached, or stayed busy; the same call can succeed later.

    It answers 1010 with HTTP 503 (clients retry it): nothing was written.
    """

    code = "1010"
    http_status = 503


class LockConflict(StoreUnavailable):
    """Two transactions waited for each other's rows and the database ended this one (a
    deadlock, or a serialization failure): nothing of it was written, and running it again will
    most likely succeed."""
