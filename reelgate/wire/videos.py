"""The ``/v1/videos`` wire format: OpenAI's Videos API as its ``openai`` SDK types it.

Answers are the SDK's ``Video``, ``VideoDeleteResponse`` and list page (fields, names and order
as ``openai/types/video*.py`` declare them), and errors its ``{"error": {message, type, param,
code}}``. Requests are ``POST /v1/videos`` bodies, multipart (the SDK's way) or JSON, with the
extension fields of vLLM-Omni, SGLang and FastVideo that reelgate can honour; both arrive as
text or JSON values and are read leniently (``"4"`` and ``4`` alike), as those servers do.

Nothing here imports the server: the wire is shared with the SDK and the ``openai-videos``
engine, which reads these answers from other servers.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

#: Video ids are the task id behind this prefix.
VIDEO_ID_PREFIX = "video_"

VideoStatus = Literal["queued", "in_progress", "completed", "failed"]
#: What ``GET /v1/videos/{id}/content`` serves.
ContentVariant = Literal["video", "thumbnail", "spritesheet"]


def _json_object(value: Any) -> Any:
    """A reference or ``extra_params`` given as JSON text (a form field) is read as its object;
    blank text is absent."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text.startswith("{"):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                raise ValueError("is not valid JSON") from None
    return value


def _blank_is_absent(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


class ImageReference(BaseModel):
    """``{"image_url": …}``: an http(s) URL, one of this server's links, or a ``data:`` URL.
    ``file_id`` (OpenAI's Files API) is part of the format, and refused: there is no such API
    here."""

    model_config = ConfigDict(extra="ignore")

    image_url: str | None = Field(None, description="An http(s) URL or a `data:` URL.")
    file_id: str | None = Field(None, description="Not supported here (no Files API).")


class VideoReference(BaseModel):
    """``{"video_url": …}``: the source of an edit (vLLM-Omni's ``video_reference``)."""

    model_config = ConfigDict(extra="ignore")

    video_url: str | None = Field(None, description="An http(s) URL or a `data:` URL.")
    file_id: str | None = Field(None, description="Not supported here (no Files API).")


class VideoCreateRequest(BaseModel):
    """``POST /v1/videos``: what to make. Multipart fields arrive as text; JSON values as
    themselves. Unknown fields are ignored, as OpenAI-compatible servers do."""

    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(description="What to generate (1–2500 characters).")
    model: Annotated[str | None, BeforeValidator(_blank_is_absent)] = Field(
        None,
        description="A name the operator mapped onto a catalogue model (`sora-2`, `sora-2-pro` "
        "by default), or a catalogue path such as `kling-video-o3-pro/image-to-video`.",
    )
    seconds: Annotated[str | int | None, BeforeValidator(_blank_is_absent)] = Field(
        None, description="Whole seconds of video, within the model's range (3–15).", examples=["4"]
    )
    size: Annotated[str | None, BeforeValidator(_blank_is_absent)] = Field(
        None, description="`WIDTHxHEIGHT` in pixels, even numbers 64–3840.", examples=["1280x720"]
    )
    input_reference: Annotated[ImageReference | None, BeforeValidator(_json_object)] = Field(
        None,
        description='The first frame: a file (multipart) or `{"image_url": …}`. A video file '
        "makes the request an edit of that video.",
    )
    image_reference: Annotated[ImageReference | None, BeforeValidator(_json_object)] = Field(
        None,
        description='vLLM-Omni extension: the first frame as `{"image_url": …}` (JSON text in '
        "a form); with `video_reference`, a reference image of the edit.",
    )
    video_reference: Annotated[VideoReference | None, BeforeValidator(_json_object)] = Field(
        None,
        description='vLLM-Omni extension: `{"video_url": …}`, the source of an edit (3–10 s).',
    )
    generate_sound: Annotated[bool | None, BeforeValidator(_blank_is_absent)] = Field(
        None, description="vLLM-Omni extension: make sound with the video (default false)."
    )
    negative_prompt: Annotated[str | None, BeforeValidator(_blank_is_absent)] = Field(
        None,
        description="vLLM-Omni/SGLang extension: accepted and not used (no engine of reelgate "
        "takes one).",
    )
    seed: Annotated[int | None, BeforeValidator(_blank_is_absent)] = Field(
        None, description="Extension: the render seed, 0–4294967295 (default: from the request)."
    )
    extra_params: Annotated[dict[str, Any] | None, BeforeValidator(_json_object)] = Field(
        None,
        description="vLLM-Omni extension: fields of the catalogue model's own request by their "
        'RunningHub names, e.g. `{"lastImageUrl": …}` or `{"keepOriginalSound": false}`.',
    )


class VideoError(BaseModel):
    """Why a video failed: ``code`` is the contract's code (RunningHub's ``errorCode``)."""

    code: str = Field(description="The contract's code, e.g. `1013`.", examples=["1013"])
    message: str = Field(description="What went wrong.")


class Video(BaseModel):
    """A video job, field for field as the ``openai`` SDK's ``Video``."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(description="`video_` and the task id.", examples=["video_2009191190196789249"])
    completed_at: int | None = Field(None, description="Unix seconds it ended, once it ended.")
    created_at: int = Field(description="Unix seconds it was created.")
    error: VideoError | None = Field(None, description="Why it failed, once `failed`.")
    expires_at: int | None = Field(
        None, description="Unix seconds its files are deleted (none: kept)."
    )
    model: str = Field(description="The model name it was asked with.", examples=["sora-2"])
    object: Literal["video"] = "video"
    progress: int = Field(description="Percent done, 0–100.")
    prompt: str | None = Field(None, description="The prompt.")
    remixed_from_video_id: str | None = None
    seconds: str = Field(description="Seconds of video.", examples=["4"])
    size: str = Field(description="`WIDTHxHEIGHT` of the video.", examples=["720x1280"])
    status: VideoStatus = Field(description="`queued`, `in_progress`, `completed` or `failed`.")


class VideoList(BaseModel):
    """One page of ``GET /v1/videos``; the next page is ``?after=<last_id>``."""

    object: Literal["list"] = "list"
    data: list[Video]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class VideoDeleted(BaseModel):
    """``DELETE /v1/videos/{id}``: the video is cancelled (when it runs) and deleted."""

    id: str
    deleted: bool = True
    object: Literal["video.deleted"] = "video.deleted"


class ErrorDetail(BaseModel):
    message: str = Field(description="What went wrong.")
    type: str = Field(
        description="OpenAI's kind: `invalid_request_error`, `authentication_error`, "
        "`not_found_error`, `rate_limit_error`, `insufficient_quota`, `server_error`, …"
    )
    param: str | None = Field(None, description="The request field at fault, when one is.")
    code: str | None = Field(
        None, description="The contract's code (RunningHub's `errorCode`), e.g. `1007`."
    )


class ErrorBody(BaseModel):
    """Every ``/v1/`` error: OpenAI's shape, with an HTTP 4xx or 5xx status."""

    error: ErrorDetail


def video_id(task_id: int | str) -> str:
    return f"{VIDEO_ID_PREFIX}{task_id}"


def task_id_of(video: str) -> str | None:
    """The task id inside a video id (None when it is not one)."""
    if not video.startswith(VIDEO_ID_PREFIX):
        return None
    rest = video.removeprefix(VIDEO_ID_PREFIX)
    return rest if rest.isdigit() else None
