"""reelgate's Python SDK for RunningHub's Kling O3 video API, on RunningHub or a reelgate server.

    from reelgate.client import Client

    with Client() as rg:  # REELGATE_BASE_URL, REELGATE_API_KEY
        task = rg.image_to_video("a cat surfs a wave", "cat.png", duration=5)
        task.wait(timeout=600)
        print(task.download("out/"))

Submit, upload, poll and download are covered once and carefully: local files are uploaded once
(by content hash), waits have a deadline and end in ``StillRunning`` rather than a false failure,
and a submit is never repeated when that could create (and bill) a second task. This package
imports nothing from the reelgate server.
"""

from reelgate.client._async import AsyncClient, AsyncTask
from reelgate.client._client import Client, Task
from reelgate.client._config import (
    DEFAULT_POLL,
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
    NO_RETRY,
    RUNNINGHUB_AI,
    RUNNINGHUB_CN,
    USE_CLIENT_DEFAULT,
    PollPolicy,
    RetryPolicy,
)
from reelgate.client._errors import (
    AccessDenied,
    APIError,
    ConnectError,
    ContentRejected,
    DownloadError,
    FinalError,
    InsufficientBalance,
    InvalidApiKey,
    InvalidParameters,
    NetworkError,
    QueueFull,
    RateLimited,
    ReelgateError,
    RequestValidationError,
    ResponseLost,
    RetryableError,
    ServerError,
    ServiceUnavailable,
    StillRunning,
    TaskCancelled,
    TaskError,
    TaskFailed,
    TaskNotFound,
    UnexpectedResponse,
)
from reelgate.client._models import (
    REQUEST_MODELS,
    AccountStatus,
    KlingO3ProImageToVideo,
    KlingO3ProVideoEdit,
    KlingO3StdImageToVideo,
    KlingO3StdVideoEdit,
    ModelRequest,
    Output,
    PricePreview,
    QueueStatus,
    ShotPrompt,
    TaskInfo,
    TaskStatus,
    UploadedFile,
    Usage,
)
from reelgate.client._upload import MemoryUploadCache, UploadCache

__all__ = [
    "DEFAULT_POLL",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WAIT_TIMEOUT",
    "NO_RETRY",
    "REQUEST_MODELS",
    "RUNNINGHUB_AI",
    "RUNNINGHUB_CN",
    "USE_CLIENT_DEFAULT",
    "APIError",
    "AccessDenied",
    "AccountStatus",
    "AsyncClient",
    "AsyncTask",
    "Client",
    "ConnectError",
    "ContentRejected",
    "DownloadError",
    "FinalError",
    "InsufficientBalance",
    "InvalidApiKey",
    "InvalidParameters",
    "KlingO3ProImageToVideo",
    "KlingO3ProVideoEdit",
    "KlingO3StdImageToVideo",
    "KlingO3StdVideoEdit",
    "MemoryUploadCache",
    "ModelRequest",
    "NetworkError",
    "Output",
    "PollPolicy",
    "PricePreview",
    "QueueFull",
    "QueueStatus",
    "RateLimited",
    "ReelgateError",
    "RequestValidationError",
    "ResponseLost",
    "RetryPolicy",
    "RetryableError",
    "ServerError",
    "ServiceUnavailable",
    "ShotPrompt",
    "StillRunning",
    "Task",
    "TaskCancelled",
    "TaskError",
    "TaskFailed",
    "TaskInfo",
    "TaskNotFound",
    "TaskStatus",
    "UnexpectedResponse",
    "UploadCache",
    "UploadedFile",
    "Usage",
]
