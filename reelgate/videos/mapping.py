"""OpenAI's Videos API onto the catalogue, and back: no I/O, the rules in one place.

A ``POST /v1/videos`` becomes a RunningHub body for one catalogue model (``plan``): its family
comes from the inputs (a first frame: image-to-video; a source video: video-edit), its vendor
from the model name through ``VideosApiSettings.models``; ``seconds`` is the duration, ``size``
the ``size`` extension, ``generate_sound`` the sound, ``seed`` the seed, and ``extra_params``
any other field of the catalogue request by its RunningHub name. The task is then an ordinary
task of that model: priced, queued, run, refunded and answered like any other. A task becomes
a ``Video`` again (``video_of``), whichever API submitted it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from reelgate.config import VideosApiSettings
from reelgate.core.catalogue import Family, ModelSpec, get_model
from reelgate.core.errors import InvalidParameters
from reelgate.core.status import TaskStatus
from reelgate.store.tables import Task
from reelgate.wire.requests import PROMPT_MAX, parse_size
from reelgate.wire.videos import (
    ImageReference,
    Video,
    VideoCreateRequest,
    VideoError,
    VideoReference,
    VideoStatus,
    video_id,
)

#: What an answer says of a size or a length the engine chooses (an edit keeps its source's;
#: a RunningHub task without ``size`` follows its first frame).
AUTO = "auto"
#: ``error.code`` of a cancelled video (RunningHub's CANCEL has no error code).
CANCELLED = "cancelled"

_STATUS: dict[str, VideoStatus] = {
    TaskStatus.QUEUED.value: "queued",
    TaskStatus.RUNNING.value: "in_progress",
    TaskStatus.SUCCESS.value: "completed",
    TaskStatus.FAILED.value: "failed",
    TaskStatus.CANCEL.value: "failed",
}
#: RunningHub field -> the OpenAI field it comes from, to name the ``param`` of an error.
_PARAM_OF = {
    "prompt": "prompt",
    "firstImageUrl": "input_reference",
    "duration": "seconds",
    "size": "size",
    "sound": "generate_sound",
    "seed": "seed",
    "videoUrl": "video_reference",
    "imageUrls": "image_reference",
}


class InvalidVideoParameter(InvalidParameters):
    """A ``/v1/videos`` request field breaks a rule (1007); ``param`` names the field."""

    def __init__(self, param: str | None, detail: str) -> None:
        super().__init__(detail)
        self.param = param


@dataclass(frozen=True)
class Inputs:
    """The media of a request, as links the worker can fetch: an uploaded file's kind and
    link, then the references given as URLs."""

    upload_kind: str | None = None
    upload_url: str | None = None


@dataclass(frozen=True)
class Plan:
    """What a request becomes: a catalogue model and its RunningHub body."""

    model: ModelSpec
    body: dict[str, Any]


def parsed_request(fields: Any) -> VideoCreateRequest:
    """The request from a JSON object or a form's text fields; 1007 naming the field."""
    if not isinstance(fields, dict):
        raise InvalidVideoParameter(None, "the request body must be a JSON object")
    try:
        return VideoCreateRequest.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in error["loc"] if not str(p).startswith("function-"))
        message = "is required" if error["type"] == "missing" else error["msg"]
        message = message.removeprefix("Value error, ")
        raise InvalidVideoParameter(
            str(error["loc"][0]) if error["loc"] else None, f"{where} {message}".strip()
        ) from None


def plan(request: VideoCreateRequest, inputs: Inputs, settings: VideosApiSettings) -> Plan:
    """The catalogue model and RunningHub body of a create request; 1007 naming the field."""
    prompt = request.prompt
    if not prompt.strip() or len(prompt) > PROMPT_MAX:
        raise InvalidVideoParameter("prompt", f"prompt must be 1–{PROMPT_MAX} characters")
    image, video = _media(request, inputs)
    family = Family.VIDEO_EDIT if video is not None else Family.IMAGE_TO_VIDEO
    model = _model(request.model or settings.default_model, family, settings)
    body: dict[str, Any] = {"prompt": prompt}
    if family is Family.IMAGE_TO_VIDEO:
        body["duration"] = _seconds(request.seconds, settings.default_seconds)
        body["size"] = _size(request.size or settings.default_size)
        body["sound"] = bool(request.generate_sound)
        if image is not None:
            body["firstImageUrl"] = image
    else:
        if request.size is not None:
            raise InvalidVideoParameter("size", "an edit keeps its source video's size")
        body["videoUrl"] = video
        if image is not None:
            body["imageUrls"] = [image]
    if request.seed is not None:
        body["seed"] = request.seed
    body.update(_extra(request.extra_params, model, set(body)))
    checked(model, body)
    return Plan(model, body)


def checked(model: ModelSpec, body: dict[str, Any]) -> None:
    """The catalogue's own rules, with the error's ``param`` in OpenAI's names."""
    try:
        model.parse(body)
    except InvalidParameters as error:
        field = (error.detail or "").split(" ", 1)[0].split(".", 1)[0]
        param = _PARAM_OF.get(field, "extra_params")
        if field == "firstImageUrl" and "required" in (error.detail or ""):
            raise InvalidVideoParameter(
                "input_reference",
                "input_reference (an image) is required: this server makes videos from a first "
                "frame (its catalogue has image-to-video and video-edit, no text-to-video)",
            ) from None
        raise InvalidVideoParameter(param, error.detail or error.message) from None


def _media(request: VideoCreateRequest, inputs: Inputs) -> tuple[str | None, str | None]:
    """(the image, the video) of a request, as links or URLs."""
    image: str | None = None
    video: str | None = None
    if inputs.upload_url is not None:
        if inputs.upload_kind == "video":
            video = inputs.upload_url
        elif inputs.upload_kind == "image":
            image = inputs.upload_url
        else:
            raise InvalidVideoParameter(
                "input_reference", "input_reference must be an image or a video file"
            )
    for name, reference in (
        ("input_reference", request.input_reference),
        ("image_reference", request.image_reference),
    ):
        if reference is None:
            continue
        if image is not None:
            raise InvalidVideoParameter(
                name, "give one image: input_reference or image_reference, not both"
            )
        image = _url_of(name, reference)
    if request.video_reference is not None:
        if video is not None:
            raise InvalidVideoParameter(
                "video_reference", "give one video: an input_reference file or video_reference"
            )
        video = _url_of("video_reference", request.video_reference)
    return image, video


def _url_of(name: str, reference: ImageReference | VideoReference) -> str:
    url = reference.image_url if isinstance(reference, ImageReference) else reference.video_url
    if reference.file_id is not None and url is None:
        raise InvalidVideoParameter(name, f"{name}.file_id is not supported: there is no Files API")
    if not url or not url.strip():
        field = "image_url" if isinstance(reference, ImageReference) else "video_url"
        raise InvalidVideoParameter(name, f"{name}.{field} is required")
    return url.strip()


def _model(name: str, family: Family, settings: VideosApiSettings) -> ModelSpec:
    """The catalogue model a name means for a family."""
    direct = get_model(name)
    target = direct.path if direct is not None else settings.models.get(name.strip())
    if target is None:
        known = ", ".join(sorted(settings.models)) or "none"
        raise InvalidVideoParameter(
            "model", f"unknown model {name!r}: the names here are {known}, or a catalogue path"
        )
    path = target if "/" in target else f"{target}/{family.value}"
    model = get_model(path)
    if model is None:
        raise InvalidVideoParameter("model", f"model {name!r} has no {family.value} model here")
    if model.family is not family:
        wanted = "a video reference" if family is Family.VIDEO_EDIT else "an image reference"
        raise InvalidVideoParameter("model", f"{model.path} does not take {wanted}")
    return model


def _seconds(value: str | int | None, default: int) -> int:
    if value is None:
        return default
    text = str(value).strip()
    if not text.isdigit() or len(text) > 4:
        raise InvalidVideoParameter("seconds", f"seconds must be a whole number, not {value!r}")
    return int(text)


def _size(value: str) -> str:
    try:
        width, height = parse_size(value)
    except ValueError as error:
        raise InvalidVideoParameter("size", str(error)) from None
    return f"{width}x{height}"


def _extra(extra: dict[str, Any] | None, model: ModelSpec, mapped: set[str]) -> dict[str, Any]:
    """``extra_params``: other fields of the catalogue request, by their RunningHub names."""
    if not extra:
        return {}
    fields = model.request_type.model_fields
    known = {info.alias or name for name, info in fields.items()}
    for name in extra:
        if name in mapped:
            raise InvalidVideoParameter(
                "extra_params", f"extra_params.{name} is set by this request's own fields"
            )
        if name not in known:
            raise InvalidVideoParameter(
                "extra_params",
                f"extra_params.{name} is not a field of {model.path}; its fields are "
                + ", ".join(sorted(known - mapped)),
            )
    return dict(extra)


# -- tasks as videos -----------------------------------------------------------------------


def status_of(task: Task) -> VideoStatus:
    return _STATUS[task.status]


def video_of(task: Task, settings: VideosApiSettings, retention_seconds: int = 0) -> Video:
    """The ``Video`` a task is, whichever API submitted it; its files are deleted
    ``retention_seconds`` after it ended (0: never)."""
    status = status_of(task)
    params = task.params or {}
    model = get_model(task.model)
    ended = task.status not in (TaskStatus.QUEUED.value, TaskStatus.RUNNING.value)
    edit = model is not None and model.family is Family.VIDEO_EDIT
    return Video(
        id=video_id(task.id),
        completed_at=_epoch(task.finished_at) if ended and task.finished_at else None,
        created_at=_epoch(task.created_at) or 0,
        error=_error_of(task),
        expires_at=_expiry(task, settings_seconds=retention_seconds),
        model=model_name(task.model, settings),
        progress=100 if status == "completed" else min(99, round(task.progress * 100)),
        prompt=params.get("prompt") if isinstance(params.get("prompt"), str) else None,
        seconds=AUTO if edit else str(params.get("duration", 5)),
        size=str(params.get("size") or AUTO),
        status=status,
    )


def model_name(path: str, settings: VideosApiSettings) -> str:
    """The first configured name of a catalogue model (its path when none names it)."""
    model = get_model(path)
    for name, target in settings.models.items():
        if target == path or (
            model is not None and "/" not in target and f"{target}/{model.family.value}" == path
        ):
            return name
    return path


def _error_of(task: Task) -> VideoError | None:
    if task.status == TaskStatus.FAILED.value:
        return VideoError(code=task.error_code or "1015", message=task.error_message)
    if task.status == TaskStatus.CANCEL.value:
        return VideoError(code=CANCELLED, message="the video was cancelled")
    return None


def _expiry(task: Task, *, settings_seconds: int) -> int | None:
    """When an ended task's files are deleted (retention), in Unix seconds."""
    if not settings_seconds or task.finished_at is None:
        return None
    return (_epoch(task.finished_at) or 0) + settings_seconds


def _epoch(moment: datetime | None) -> int | None:
    """Unix seconds of a stored (naive UTC) time."""
    return None if moment is None else int(moment.replace(tzinfo=UTC).timestamp())
