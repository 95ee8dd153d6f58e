"""OpenAI's Videos API: ``/v1/videos`` beside the RunningHub API, on the same tasks and keys.

The key is the Bearer header, checked before the body is read (and counted: a create against
the submit budget, everything else against the query budget). A create's form is read as it
arrives (``api/forms.py``): its ``input_reference`` file is stored as an upload of the key's,
chunk by chunk, and its other fields are read as the JSON body's would be. Errors are OpenAI's
shape with 4xx statuses (``api/errors.py``); answers about an unfinished video carry
``openai-poll-after-ms``, which the SDK's ``poll()`` waits for.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from reelgate.api.deps import base_url, bearer_caller, json_body, service
from reelgate.api.fileresponse import file_response
from reelgate.api.forms import FileChunk, FileEnd, FileStart, FormField, FormLimits, form_events
from reelgate.api.openapi import binary_response
from reelgate.api.openapi import json_body as body_doc
from reelgate.core.errors import InvalidParameters
from reelgate.service import Caller
from reelgate.uploads import IncomingUpload
from reelgate.videos.mapping import InvalidVideoParameter, parsed_request
from reelgate.videos.service import VideoService
from reelgate.wire.videos import ErrorBody, Video, VideoCreateRequest, VideoDeleted, VideoList

router = APIRouter(tags=["videos"])

CallerDep = Annotated[Caller, Depends(bearer_caller)]
#: A create's form: a few fields (a prompt, a size, JSON references that may carry ``data:``
#: URLs) and one file.
MAX_FORM_PARTS = 32
_NO_SNIFF = {"X-Content-Type-Options": "nosniff"}
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": why, "model": ErrorBody}
    for status, why in (
        (400, "Invalid request (`code` is the contract's: `1007`, `1001`, `1013`, …)."),
        (401, "No key, or not a valid one (`1002`)."),
        (404, "No such video for this key (`1004`)."),
        (429, "Rate limited (`1003`), queue full (`421`) or coins short (`416`)."),
    )
}
_CREATE_FORM = {
    "type": "object",
    "required": ["prompt"],
    "properties": {
        "prompt": {"type": "string"},
        "model": {"type": "string"},
        "seconds": {"type": "string"},
        "size": {"type": "string"},
        "input_reference": {
            "type": "string",
            "format": "binary",
            "description": "The first frame (an image), or the source of an edit (a video).",
        },
        "image_reference": {"type": "string", "description": 'JSON: {"image_url": …}.'},
        "video_reference": {"type": "string", "description": 'JSON: {"video_url": …}.'},
        "generate_sound": {"type": "string", "enum": ["true", "false"]},
        "negative_prompt": {"type": "string"},
        "seed": {"type": "string"},
        "extra_params": {"type": "string", "description": "JSON: RunningHub fields by name."},
    },
}


def _create_body() -> dict[str, Any]:
    """The create's body as documented: the JSON model, and the form the SDK sends."""
    documented = body_doc(VideoCreateRequest)
    documented["requestBody"]["content"]["multipart/form-data"] = {"schema": _CREATE_FORM}
    return documented


def videos_of(request: Request) -> VideoService:
    videos: VideoService = request.app.state.videos
    return videos


def _poll_hint(video: Video, response: Response, videos: VideoService) -> Video:
    """The SDK's ``poll()`` waits ``openai-poll-after-ms`` between retrievals."""
    if video.status in ("queued", "in_progress"):
        response.headers["openai-poll-after-ms"] = str(videos.settings.poll_after_ms)
    return video


@router.post(
    "/v1/videos",
    summary="Create a video (OpenAI Videos API)",
    description="Multipart (the `openai` SDK's way) or JSON. An image `input_reference` makes an "
    "image-to-video task of the model the name maps to; a video (file or `video_reference`) an "
    "edit. The answer is the video, `queued`; poll `GET /v1/videos/{video_id}`.",
    response_model=Video,
    responses=_ERRORS,
    openapi_extra=_create_body(),
)
async def create_video(request: Request, response: Response, caller: CallerDep) -> Video:
    videos = videos_of(request)
    upload: tuple[str, str] | None = None
    if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        fields, upload = await _read_form(request, caller, videos)
    else:
        fields = await json_body(request)
    parsed = parsed_request(fields)
    video, task = await run_in_threadpool(
        lambda: videos.create(
            caller,
            parsed,
            upload=upload,
            base_url=base_url(request),
            idempotency_key=request.headers.get("idempotency-key"),
        )
    )
    request.app.state.metrics.task_submitted(task.model)
    return _poll_hint(video, response, videos)


async def _read_form(
    request: Request, caller: Caller, videos: VideoService
) -> tuple[dict[str, str], tuple[str, str] | None]:
    """The form's text fields, and its stored ``input_reference`` file (key, kind)."""
    limits = service(request).settings.http
    bounds = FormLimits(MAX_FORM_PARTS, limits.max_model_json_bytes, limits.max_model_json_bytes)
    fields: dict[str, str] = {}
    upload: IncomingUpload | None = None
    receiving = complete = False
    try:
        async with aclosing(form_events(request, bounds)) as events:
            async for event in events:
                if isinstance(event, FormField):
                    fields.setdefault(event.name, event.value)
                elif isinstance(event, FileStart):
                    if event.name != "input_reference" or upload is not None:
                        raise InvalidVideoParameter(
                            event.name, "only one file is taken: input_reference"
                        )
                    upload = await run_in_threadpool(videos.begin_upload, caller, event.filename)
                    receiving = True
                elif isinstance(event, FileChunk):
                    if receiving and upload is not None:
                        await run_in_threadpool(upload.write, event.data)
                elif isinstance(event, FileEnd):
                    complete = complete or receiving
                    receiving = False
        if upload is None:
            return fields, None
        if not complete:
            raise InvalidParameters("the body must be multipart/form-data: it ended in the file")
        key, kind, _size = await run_in_threadpool(upload.finish)
        return fields, (key, kind)
    except BaseException:
        if upload is not None:
            upload.discard()  # at once, even when cancelled: no partial file is left behind
        raise


@router.get(
    "/v1/videos/{video_id}",
    summary="Retrieve a video (OpenAI Videos API)",
    response_model=Video,
    responses=_ERRORS,
)
async def retrieve_video(
    video_id: str, request: Request, response: Response, caller: CallerDep
) -> Video:
    videos = videos_of(request)
    video, _task = await run_in_threadpool(videos.get, caller, video_id)
    return _poll_hint(video, response, videos)


@router.get(
    "/v1/videos",
    summary="List videos (OpenAI Videos API)",
    description="The key's videos (its tasks, whichever API submitted them), newest first; the "
    "next page is `?after=<last_id>` while `has_more`.",
    response_model=VideoList,
    responses=_ERRORS,
)
async def list_videos(
    request: Request,
    caller: CallerDep,
    after: str | None = None,
    limit: str | None = None,
    order: str | None = None,
) -> VideoList:
    videos = videos_of(request)
    return await run_in_threadpool(
        lambda: videos.page(caller, after=after, limit=limit, order=order)
    )


@router.delete(
    "/v1/videos/{video_id}",
    summary="Delete a video (OpenAI Videos API)",
    description="A queued or running video is cancelled first (refunded, and stopped where it "
    "runs); then its files are deleted and its id answers 404, as when its retention ends.",
    response_model=VideoDeleted,
    responses=_ERRORS,
)
async def delete_video(video_id: str, request: Request, caller: CallerDep) -> VideoDeleted:
    return await run_in_threadpool(videos_of(request).delete, caller, video_id)


async def _content(video_id: str, request: Request, caller: Caller) -> Response:
    videos = videos_of(request)
    variant = request.query_params.get("variant")
    stored = await run_in_threadpool(videos.content, caller, video_id, variant)
    return file_response(
        request, stored, lambda start, end: videos.read(stored, start, end), _NO_SNIFF
    )


@router.get(
    "/v1/videos/{video_id}/content",
    summary="Download a video's content (OpenAI Videos API)",
    description="`variant=video` (the MP4, the default), `thumbnail` (WebP) or `spritesheet` "
    "(JPEG); `Range` requests are answered with the part asked for, `HEAD` with the headers.",
    response_class=FileResponse,
    responses={
        **binary_response("video/mp4", "The MP4, or the still asked for."),
        **_ERRORS,
        409: {
            "description": "No content yet: `813` queued, `804` running, `805` failed or "
            "cancelled.",
            "model": ErrorBody,
        },
    },
)
async def video_content(
    video_id: str, request: Request, caller: CallerDep, variant: str | None = None
) -> Response:
    return await _content(video_id, request, caller)


@router.head("/v1/videos/{video_id}/content", include_in_schema=False)
async def video_content_head(video_id: str, request: Request, caller: CallerDep) -> Response:
    return await _content(video_id, request, caller)
