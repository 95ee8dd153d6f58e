"""The RunningHub wire contract as pydantic models, shared by the server and the SDK.

    requests   the body of every model endpoint (generic over the media type), task references
    responses  the v2 task object, the v1 and upload envelopes, and the data they carry
    status     the task status enum

This package imports nothing from the server (nor FastAPI, SQLAlchemy or PyAV): the SDK uses it
as it is.
"""

from reelgate.wire.requests import (
    MAX_DURATION,
    MAX_REFERENCE_IMAGES,
    MAX_SHOTS,
    MIN_DURATION,
    MODEL_REQUESTS,
    PROMPT_MAX,
    WIRE_REQUESTS,
    AccountRequest,
    ImageToVideoRequest,
    KeyedTaskRef,
    KlingO3ProImageToVideo,
    KlingO3ProVideoEdit,
    KlingO3StdImageToVideo,
    KlingO3StdVideoEdit,
    MediaUrl,
    ModelRequest,
    Shot,
    ShotPrompt,
    TaskRef,
    VideoEditRequest,
)
from reelgate.wire.responses import (
    AccountStatus,
    Envelope,
    FailedReason,
    LegacyUpload,
    OutputFile,
    PricePreview,
    QueueStatus,
    RateLimitedTask,
    ResultItem,
    TaskObject,
    UploadedFile,
    UploadEnvelope,
    Usage,
    number,
)
from reelgate.wire.status import TaskStatus

__all__ = [
    "MAX_DURATION",
    "MAX_REFERENCE_IMAGES",
    "MAX_SHOTS",
    "MIN_DURATION",
    "MODEL_REQUESTS",
    "PROMPT_MAX",
    "WIRE_REQUESTS",
    "AccountRequest",
    "AccountStatus",
    "Envelope",
    "FailedReason",
    "ImageToVideoRequest",
    "KeyedTaskRef",
    "KlingO3ProImageToVideo",
    "KlingO3ProVideoEdit",
    "KlingO3StdImageToVideo",
    "KlingO3StdVideoEdit",
    "LegacyUpload",
    "MediaUrl",
    "ModelRequest",
    "OutputFile",
    "PricePreview",
    "QueueStatus",
    "RateLimitedTask",
    "ResultItem",
    "Shot",
    "ShotPrompt",
    "TaskObject",
    "TaskRef",
    "TaskStatus",
    "UploadEnvelope",
    "UploadedFile",
    "Usage",
    "VideoEditRequest",
    "number",
]
