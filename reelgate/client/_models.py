"""Request models of the four Kling O3 endpoints, and the values the server answers with.

The request models check the same rules as the server (contract §2 and §3: lengths, ranges,
enums, strict JSON types, the multi-shot rules) before anything is sent, so a bad request fails
at once with ``RequestValidationError`` naming the field, instead of after an upload. Python
names are snake_case; the wire (camelCase) names are accepted too, and are what is sent.

Media fields take a URL, a local path (``str`` without a scheme, or ``Path``) or ``bytes``;
local files and bytes are uploaded by the client and replaced by their ``download_url``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictBytes,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from reelgate.client._errors import RequestValidationError, UnexpectedResponse

PROMPT_MAX = 2500
MIN_DURATION, MAX_DURATION = 3, 15
MAX_REFERENCE_IMAGES = 4
MAX_SHOTS = 6

Prompt = Annotated[StrictStr, Field(min_length=1, max_length=PROMPT_MAX)]
#: A URL, a local path, or the file's bytes.
Media = (
    Annotated[StrictStr, Field(min_length=1, max_length=8 * 1024 * 1024)]
    | Path
    | Annotated[StrictBytes, Field(min_length=1)]
)


class _Model(BaseModel):
    model_config = ConfigDict(
        strict=True,
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
    )


class ShotPrompt(_Model):
    """One segment of a multi-shot video: ``{"index"?, "prompt", "duration"?}``."""

    index: StrictInt | None = None
    prompt: Prompt
    #: Whole seconds, as an integer or a string of digits (Kling sends ``"5"``).
    duration: StrictInt | StrictStr | None = None

    def seconds(self) -> int | None:
        if self.duration is None:
            return None
        if isinstance(self.duration, int):
            return self.duration
        text = self.duration.strip()
        if not text.isdigit():
            raise ValueError(
                f"multiPrompt duration must be a whole number of seconds, got {text!r}"
            )
        return int(text)


class ModelRequest(_Model):
    """A request to one model endpoint; ``model_path`` says which."""

    model_path: ClassVar[str]
    #: Wire names of the fields that hold media.
    media_fields: ClassVar[tuple[str, ...]]

    @classmethod
    def parse(cls, data: dict[str, Any]) -> ModelRequest:
        """Validate keyword or wire-named fields; errors become ``RequestValidationError``."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise RequestValidationError(describe(exc, cls.model_path)) from None

    def to_payload(self) -> dict[str, Any]:
        """The JSON body with wire names; empty optional fields are left out (contract §1)."""
        body: dict[str, Any] = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if value is None:
                continue
            wire = info.alias or name
            if isinstance(value, list):
                value = [
                    v.model_dump(by_alias=True, exclude_none=True)
                    if isinstance(v, BaseModel)
                    else v
                    for v in value
                ]
            body[wire] = value
        return body


class _ImageToVideo(ModelRequest):
    media_fields = ("firstImageUrl", "lastImageUrl")

    prompt: Prompt
    first_image_url: Media
    last_image_url: Media | None = None
    duration: Annotated[StrictInt, Field(ge=MIN_DURATION, le=MAX_DURATION)] = 5
    sound: StrictBool = True
    multi_shot: StrictBool | None = None
    shot_type: Literal["customize", "intelligence"] | None = None
    multi_prompt: list[Annotated[StrictStr, Field(min_length=1)] | ShotPrompt] | None = None

    @model_validator(mode="after")
    def _check_shots(self) -> _ImageToVideo:
        if self.multi_shot:
            check_shots(self.shot_type or "customize", self.multi_prompt or [], self.duration)
        return self


class _VideoEdit(ModelRequest):
    media_fields = ("videoUrl", "imageUrls")

    prompt: Prompt
    video_url: Media
    image_urls: Annotated[list[Media], Field(max_length=MAX_REFERENCE_IMAGES)] | None = None
    keep_original_sound: StrictBool = True


ElementRef = StrictStr | dict[str, Any]


class KlingO3ProImageToVideo(_ImageToVideo):
    """``kling-video-o3-pro/image-to-video``: a video from a first (and optional last) frame."""

    model_path = "kling-video-o3-pro/image-to-video"
    element_list: list[ElementRef] | None = None


class KlingO3StdImageToVideo(_ImageToVideo):
    """``kling-video-o3-std/image-to-video``: as pro, cheaper, without ``elementList``."""

    model_path = "kling-video-o3-std/image-to-video"


class KlingO3ProVideoEdit(_VideoEdit):
    """``kling-video-o3-pro/video-edit``: edit a 3–10 s MP4 with a prompt and reference images."""

    model_path = "kling-video-o3-pro/video-edit"
    element_list: list[ElementRef] | None = None


class KlingO3StdVideoEdit(_VideoEdit):
    """``kling-video-o3-std/video-edit``: as pro, cheaper, without ``elementList``."""

    model_path = "kling-video-o3-std/video-edit"


#: The typed request model of each model path the SDK knows.
REQUEST_MODELS: dict[str, type[ModelRequest]] = {
    m.model_path: m
    for m in (
        KlingO3ProImageToVideo,
        KlingO3StdImageToVideo,
        KlingO3ProVideoEdit,
        KlingO3StdVideoEdit,
    )
}


def check_shots(shot_type: str, items: list[str | ShotPrompt], duration: int) -> None:
    """The multi-shot rules (contract §12.1): ≤6 segments whose durations fit ``duration``."""
    if shot_type == "customize" and not items:
        raise ValueError("multiPrompt is required when multiShot is true and shotType is customize")
    if len(items) > MAX_SHOTS:
        raise ValueError(f"multiPrompt has at most {MAX_SHOTS} items, got {len(items)}")
    given = [None if isinstance(item, str) else item.seconds() for item in items]
    if any(g is not None and g < 1 for g in given):
        raise ValueError("multiPrompt durations must be at least 1 second")
    fixed = sum(g for g in given if g is not None)
    free = sum(1 for g in given if g is None)
    if items and not free and fixed != duration:
        raise ValueError(f"multiPrompt durations add up to {fixed} s but duration is {duration} s")
    if free and duration - fixed < free:
        raise ValueError(
            f"multiPrompt leaves {duration - fixed} s for {free} segments without a duration"
        )


def describe(exc: ValidationError, model_path: str) -> str:
    """One line naming each wrong field (by its wire name) and the rule it broke."""
    by_place: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False):
        # Keep field names and list indexes; drop the tags pydantic adds for union members.
        loc = [
            str(p) if isinstance(p, int) else to_camel(p)
            for p in error["loc"]
            if isinstance(p, int)
            or (p.isidentifier() and p[0].islower() and p not in ("str", "bytes", "int", "bool"))
        ]
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required"
        elif error["type"] == "extra_forbidden":
            message = "is not a field of this model"
        messages = by_place.setdefault(".".join(loc), [])
        if message not in messages:
            messages.append(message)
    parts: list[str] = []
    for where, messages in by_place.items():
        if len(messages) > 1 and all(m.startswith("Input should be") for m in messages):
            alternatives = [m.removeprefix("Input should be ") for m in messages]
            messages = ["Input should be " + " or ".join(alternatives)]
        parts.extend(f"{where} {m}".strip() for m in messages)
    return f"{model_path}: " + "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# Answers


class TaskStatus(StrEnum):
    """RunningHub's task statuses."""

    #: Accepted, waiting for capacity.
    QUEUED = "QUEUED"
    #: Being generated.
    RUNNING = "RUNNING"
    #: Finished; ``results`` holds the outputs.
    SUCCESS = "SUCCESS"
    #: Finished with an error (``error_code``, ``error_message``).
    FAILED = "FAILED"
    #: Cancelled before it finished.
    CANCEL = "CANCEL"

    @property
    def is_terminal(self) -> bool:
        return self in (TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.CANCEL)


def parse_status(value: object) -> TaskStatus | None:
    """A wire status; ``CREATE`` (the developer kit's pre-queue state) counts as queued."""
    text = str(value or "").strip().upper()
    if not text:
        return None
    if text == "CREATE":
        return TaskStatus.QUEUED
    try:
        return TaskStatus(text)
    except ValueError:
        raise UnexpectedResponse(f"unknown task status {text!r}") from None


def to_number(value: object) -> int | float | None:
    """RunningHub sends numbers as strings; ``None`` when absent or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    return int(number) if number.is_integer() else number


def _text(value: object) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Output:
    """One item of ``results``: a file (``url``) or a text answer (``text``)."""

    url: str | None
    #: The file extension, e.g. ``"mp4"``.
    output_type: str
    text: str | None = None
    node_id: str = ""

    @classmethod
    def from_wire(cls, item: dict[str, Any]) -> Output:
        text = next((item[k] for k in ("text", "content", "output") if item.get(k)), None)
        return cls(
            url=item.get("url") or item.get("outputUrl") or item.get("fileUrl") or None,
            output_type=_text(item.get("outputType") or item.get("fileType")),
            text=None if text is None else str(text),
            node_id=_text(item.get("nodeId")),
        )


@dataclass(frozen=True)
class Usage:
    """What a finished task cost (``usage`` on ``/query``)."""

    consume_coins: int | float | None
    task_cost_time: int | float | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class TaskInfo:
    """A task as the server last described it."""

    task_id: str
    status: TaskStatus
    error_code: str = ""
    error_message: str = ""
    results: tuple[Output, ...] = ()
    usage: Usage | None = None
    failed_reason: dict[str, Any] | None = None
    #: 0..1 while running, when the server says (``X-Reelgate-Progress``).
    progress: float | None = None
    #: Seconds the server suggests before the next query (``X-Reelgate-Poll-After``).
    poll_after: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def done(self) -> bool:
        return self.status.is_terminal

    def to_json(self) -> dict[str, Any]:
        """The wire object (``taskId``, ``status``, …) as the server sent it."""
        body = dict(self.raw) or {
            "taskId": self.task_id,
            "status": self.status.value,
            "errorCode": self.error_code,
            "errorMessage": self.error_message,
        }
        body["taskId"] = self.task_id
        body["status"] = self.status.value
        return body


@dataclass(frozen=True)
class UploadedFile:
    """A file stored by ``media/upload/binary``; its ``download_url`` is valid for one day."""

    download_url: str
    type: str
    file_name: str
    size: int
    sha256: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "download_url": self.download_url,
            "fileName": self.file_name,
            "size": self.size,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class AccountStatus:
    """``/uc/openapi/accountStatus``: balance and running tasks of the key."""

    remain_coins: int | float | None
    current_task_counts: int | float | None
    remain_money: str | None
    currency: str | None
    api_type: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> AccountStatus:
        return cls(
            remain_coins=to_number(data.get("remainCoins")),
            current_task_counts=to_number(data.get("currentTaskCounts")),
            remain_money=None if data.get("remainMoney") is None else str(data["remainMoney"]),
            currency=data.get("currency"),
            api_type=data.get("apiType"),
            raw=data,
        )


@dataclass(frozen=True)
class QueueStatus:
    """``/openapi/v2/queue/status``: the key's concurrency and what it is running."""

    api_key_type: str | None
    concurrent_limit: int | None
    running_count: int | None
    queued_count: int | None
    total_current_tasks: int | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> QueueStatus:
        def count(key: str) -> int | None:
            value = to_number(data.get(key))
            return None if value is None else int(value)

        return cls(
            api_key_type=data.get("apiKeyType"),
            concurrent_limit=count("concurrentLimit"),
            running_count=count("runningCount"),
            queued_count=count("queuedCount"),
            total_current_tasks=count("totalCurrentTasks"),
            raw=data,
        )


@dataclass(frozen=True)
class PricePreview:
    """``/openapi/v2/price-preview/{model}``: what a request would cost, without running it."""

    estimated_price: int | float | None
    currency: str | None
    price_text: str | None
    price_text_en: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> PricePreview:
        return cls(
            estimated_price=to_number(data.get("estimatedPrice")),
            currency=data.get("currency"),
            price_text=data.get("priceText"),
            price_text_en=data.get("priceTextEn"),
            raw=data,
        )
