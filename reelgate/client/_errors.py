"""Everything the SDK raises, mapped from RunningHub's codes (contract §8).

    ReelgateError
    ├── RequestValidationError       the request broke a rule; nothing was sent (also ValueError)
    ├── NetworkError
    │   ├── ConnectError             the request never left: always safe to retry        [retryable]
    │   └── ResponseLost             the request may have arrived: outcome unknown
    ├── APIError                     the server answered with an error (.code, .http_status)
    │   ├── RetryableError           trying again later can succeed                      [retryable]
    │   │   ├── RateLimited          1003, HTTP 429 (.retry_after)
    │   │   ├── QueueFull            421, 415, 814, 1520
    │   │   ├── ServiceUnavailable   1010, 1011
    │   │   └── ServerError          1000, 1005, 1012, HTTP 5xx
    │   └── FinalError               the same request will fail again
    │       ├── InvalidApiKey        1002, 401, 802, 811
    │       ├── AccessDenied         1014, 801
    │       ├── InvalidParameters    1001, 1007, 1008, 1009, 1013, 301, 809
    │       ├── InsufficientBalance  416, 812
    │       ├── ContentRejected      1501, 1505
    │       ├── TaskNotFound         1004, 423, 807
    │       └── UnexpectedResponse   the answer was not in the contract's shape
    ├── TaskError                    a task ended without success (.task)
    │   ├── TaskFailed               status FAILED (.error_code, .error_message, .error)
    │   └── TaskCancelled            status CANCEL
    ├── StillRunning                 a wait's deadline passed; the task goes on (.task_id)
    ├── WebhookVerificationError     a webhook delivery did not verify (also ValueError)
    └── DownloadError                an output could not be saved intact

``retryable`` says whether repeating the same call can succeed. ``submit_safe`` says whether a
submit that raised it certainly created no task (the request never left, or the server refused it
outright). The SDK repeats retryable calls itself; a submit only when it is ``submit_safe`` or
when an ``Idempotency-Key`` the server honours makes the repeat safe (see ``RetryPolicy``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from reelgate.wire import webhooks as wire_webhooks

if TYPE_CHECKING:
    from reelgate.client._models import TaskInfo


class ReelgateError(Exception):
    """The reelgate client failed."""

    #: Whether repeating the same call later can succeed.
    retryable: ClassVar[bool] = False
    #: Whether a submit that failed this way certainly created no task.
    submit_safe: ClassVar[bool] = False

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class RequestValidationError(ReelgateError, ValueError):
    """The request breaks a rule of the endpoint; nothing was sent."""


class WebhookVerificationError(ReelgateError, wire_webhooks.WebhookVerificationError):
    """A webhook delivery whose headers or signature do not verify: do not act on it."""


class NetworkError(ReelgateError):
    """The connection to the server failed."""

    def __init__(self, message: str | None = None, *, request: httpx.Request | None = None) -> None:
        super().__init__(message)
        self.request = request


class ConnectError(NetworkError):
    """Could not reach the server; the request was not sent."""

    retryable = True
    submit_safe = True


class ResponseLost(NetworkError):
    """The request was sent but its answer was lost: the server may or may not have acted on it."""


class APIError(ReelgateError):
    """The server answered with an error."""

    #: The codes (v2 ``errorCode`` strings and v1 ``code`` numbers as strings) of this class.
    codes: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str = "",
        http_status: int | None = None,
        task_id: str | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        text = message or (self.__doc__ or "").strip()
        super().__init__(f"[{code}] {text}" if code else text)
        #: RunningHub's code, as a string (``"1007"``, ``"416"``); empty for bare HTTP errors.
        self.code = code
        #: The server's own words.
        self.error_message = text
        self.http_status = http_status
        self.task_id = task_id
        self.response = response


class RetryableError(APIError):
    """The server is busy or limiting this key; the same call can succeed later."""

    retryable = True

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Seconds the server asked the client to wait (``Retry-After``), when it said.
        self.retry_after = retry_after


class RateLimited(RetryableError):
    """Rate limit exceeded, please slow down requests."""

    codes = frozenset({"1003"})
    submit_safe = True


class QueueFull(RetryableError):
    """The key's task queue or concurrency limit is full; retry when a task has finished."""

    codes = frozenset({"421", "415", "814", "1520"})
    submit_safe = True


class ServiceUnavailable(RetryableError):
    """The service is unavailable or busy and refused the request; retry later."""

    codes = frozenset({"1010", "1011"})
    submit_safe = True


class ServerError(RetryableError):
    """The server failed while handling the request; retry later."""

    codes = frozenset({"1000", "1005", "1012"})


class FinalError(APIError):
    """The server refused the request; repeating it unchanged will fail again."""


class InvalidApiKey(FinalError):
    """Invalid API key: check REELGATE_API_KEY and that the key belongs to this server."""

    codes = frozenset({"1002", "401", "802", "811"})


class AccessDenied(FinalError):
    """This key may not use this API (RunningHub's model API needs an Enterprise-Shared key)."""

    codes = frozenset({"1014", "801"})


class InvalidParameters(FinalError):
    """Invalid parameters, please check your input."""

    codes = frozenset({"1001", "1007", "1008", "1009", "1013", "301", "809"})


class InsufficientBalance(FinalError):
    """Insufficient balance: top up the account or lower the cost of the request."""

    codes = frozenset({"416", "812"})


class ContentRejected(FinalError):
    """Content verification failed: change the prompt or the images."""

    codes = frozenset({"1501", "1505"})


class TaskNotFound(FinalError):
    """Task not found or expired: check the task ID and that it belongs to this key."""

    codes = frozenset({"1004", "423", "807"})


class UnexpectedResponse(FinalError):
    """The server's answer did not have the shape the RunningHub contract describes."""


_BY_CODE: dict[str, type[APIError]] = {
    code: cls
    for cls in (
        RateLimited,
        QueueFull,
        ServiceUnavailable,
        ServerError,
        InvalidApiKey,
        AccessDenied,
        InvalidParameters,
        InsufficientBalance,
        ContentRejected,
        TaskNotFound,
    )
    for code in cls.codes
}


def error_class(code: str) -> type[APIError]:
    """The exception class for a RunningHub code; unknown codes are final."""
    return _BY_CODE.get(code.strip(), FinalError)


class TaskError(ReelgateError):
    """The task ended without success."""

    def __init__(self, task: TaskInfo, message: str | None = None) -> None:
        super().__init__(message)
        self.task = task
        self.task_id = task.task_id


class TaskFailed(TaskError):
    """The task failed."""

    def __init__(self, task: TaskInfo) -> None:
        detail = (
            f"[{task.error_code}] {task.error_message}" if task.error_code else task.error_message
        )
        super().__init__(task, f"task {task.task_id} failed: {detail or 'no reason given'}")
        self.error_code = task.error_code
        self.error_message = task.error_message
        #: The failure as the error class of its code, e.g. ``ContentRejected`` for 1501.
        self.error = error_class(task.error_code)(
            task.error_message or None, code=task.error_code, task_id=task.task_id
        )


class TaskCancelled(TaskError):
    """The task was cancelled."""

    def __init__(self, task: TaskInfo) -> None:
        super().__init__(task, f"task {task.task_id} was cancelled")


class StillRunning(ReelgateError):
    """The wait ended but the task has not: it is still queued or running on the server."""

    def __init__(self, task: TaskInfo, waited: float | None) -> None:
        after = "" if waited is None else f" after {waited:.0f} s"
        super().__init__(
            f"task {task.task_id} is still {task.status.value}{after}; it has not failed: "
            f"wait again or query it later with this taskId"
        )
        self.task = task
        self.task_id = task.task_id
        self.waited = waited


class DownloadError(ReelgateError):
    """An output file could not be downloaded intact."""

    retryable = True
