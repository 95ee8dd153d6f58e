"""Uploads (v2 binary and the legacy v1 form) and the signed file links.

An upload is parsed as it arrives (``api/forms.py``) and its file written chunk by chunk
(``reelgate.uploads``): the key is known before the first byte of the file is stored, and the
size cap is checked on every chunk, so a refused upload has read little and stored nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from reelgate.api.deps import Credentials, base_url, bearer_caller, service
from reelgate.api.fileresponse import file_response
from reelgate.api.forms import FileChunk, FileEnd, FileStart, FormField, form_events
from reelgate.api.openapi import binary_response, error_codes, multipart_body
from reelgate.core.errors import (
    InvalidApiKey,
    InvalidParameters,
    LinkedFileMissing,
    LinkRefused,
    StorageError,
)
from reelgate.service import Caller
from reelgate.uploads import IncomingUpload
from reelgate.wire import Envelope, LegacyUpload, UploadedFile, UploadEnvelope

router = APIRouter(tags=["media"])
log = logging.getLogger("reelgate.api")

_FILE = {"type": "string", "format": "binary", "description": "The file's bytes."}
#: The key names the legacy form's key field goes by.
_KEY_FIELDS = ("apiKey", "apikey")
#: Browsers take the served type as given, never guess one from the bytes (an upload that looks
#: like HTML is not run as a page of this server's origin).
_NO_SNIFF = {"X-Content-Type-Options": "nosniff"}

CallerForFile = Callable[[], Awaitable[Caller]]
OnField = Callable[[FormField], Awaitable[None]]


async def _receive_file(
    request: Request, *, max_bytes: int, caller_for_file: CallerForFile, on_field: OnField
) -> tuple[tuple[str, str, int], dict[str, str]]:
    """Store the form's ``file`` part as it arrives; returns ((storage key, kind, size), the
    form's other fields). ``caller_for_file`` is asked for the key when a file part begins."""
    svc = service(request)
    fields: dict[str, str] = {}
    upload: IncomingUpload | None = None
    receiving = complete = False
    try:
        async with aclosing(form_events(request)) as events:
            async for event in events:
                if isinstance(event, FormField):
                    fields.setdefault(event.name, event.value)
                    await on_field(event)
                elif isinstance(event, FileStart):
                    caller = await caller_for_file()
                    # The first ``file`` part is the upload; other file parts are not stored.
                    receiving = event.name == "file" and upload is None
                    if receiving:
                        upload = await run_in_threadpool(
                            svc.begin_upload, caller, event.filename, max_bytes=max_bytes
                        )
                elif isinstance(event, FileChunk):
                    if receiving and upload is not None:
                        await run_in_threadpool(upload.write, event.data)
                elif isinstance(event, FileEnd):
                    complete = complete or receiving
                    receiving = False
        if upload is None:
            raise InvalidParameters("multipart field 'file' is required")
        if not complete:
            raise InvalidParameters("the body must be multipart/form-data: it ended in the file")
        return await run_in_threadpool(upload.finish), fields
    except BaseException:
        if upload is not None:
            upload.discard()  # at once, even when cancelled: no partial file is left behind
        raise


async def _no_field_check(_field: FormField) -> None:
    return None


@router.post(
    "/openapi/v2/media/upload/binary",
    summary="Upload a file (v2)",
    description="Images (JPG, PNG, WEBP), videos (MP4, MOV, MKV, AVI), audio (MP3, WAV, FLAC) "
    "or ZIP. `data.download_url` is what model endpoints take; it is valid for one day."
    + error_codes("1002", "1007", "1008", "1013"),
    response_model=UploadEnvelope[UploadedFile],
    openapi_extra=multipart_body({"file": _FILE}, ["file"]),
)
async def upload_binary(
    request: Request, caller: Annotated[Caller, Depends(bearer_caller)]
) -> UploadEnvelope[UploadedFile]:
    svc = service(request)

    async def known_caller() -> Caller:
        return caller

    (key, kind, size), _ = await _receive_file(
        request,
        max_bytes=svc.settings.media.max_upload_bytes,
        caller_for_file=known_caller,
        on_field=_no_field_check,
    )
    uploaded = UploadedFile(
        type=kind,
        download_url=svc.upload_url(base_url(request), key),
        file_name=key,
        size=str(size),
    )
    return UploadEnvelope(data=uploaded)


class _LegacyKey:
    """The key of a legacy upload: the form's ``apiKey`` field, checked the moment it arrives;
    else the Bearer header, checked before the body is read.

    The file is stored only once a key was accepted, so a file part that comes before the key
    field, without a Bearer header, is refused (802) unread: forms list their fields in order,
    and RunningHub's clients (curl ``-F``, requests, httpx) send the key before the file.
    """

    def __init__(self, request: Request, credentials: Credentials) -> None:
        self._request = request
        self._token = credentials.credentials.strip() if credentials else ""
        self._caller: Caller | None = None
        self._refused: InvalidApiKey | None = None
        self._field_seen = False

    async def _authenticate(self, key: str) -> Caller:
        return await run_in_threadpool(service(self._request).authenticate, key)

    async def check_header(self) -> None:
        if self._token:
            try:
                self._caller = await self._authenticate(self._token)
            except InvalidApiKey as refused:
                self._refused = refused

    async def field(self, field: FormField) -> None:
        key = field.value.strip()
        if field.name in _KEY_FIELDS and key and not self._field_seen:
            self._field_seen = True
            if key != self._token or self._caller is None:
                self._caller = await self._authenticate(key)

    async def for_file(self) -> Caller:
        if self._caller is not None:
            return self._caller
        if self._refused is not None:
            raise self._refused
        raise InvalidApiKey(
            "no API key was sent before the file: send the apiKey field first, or an "
            "Authorization: Bearer header"
        )


@router.post(
    "/task/openapi/upload",
    summary="Upload a file (v1, deprecated)",
    description="The key travels as the form field `apiKey`, before the file (the Bearer header "
    "is the fallback); files up to 30 MB.",
    response_model=Envelope[LegacyUpload],
    openapi_extra=multipart_body(
        {
            "apiKey": {"type": "string", "description": "The API key."},
            "file": _FILE,
            "fileType": {"type": "string", "default": "input"},
        },
        ["apiKey", "file"],
    ),
)
async def upload_legacy(request: Request, credentials: Credentials) -> Envelope[LegacyUpload]:
    svc = service(request)
    key = _LegacyKey(request, credentials)
    await key.check_header()
    (stored, _kind, _size), fields = await _receive_file(
        request,
        max_bytes=svc.settings.media.max_legacy_upload_bytes,
        caller_for_file=key.for_file,
        on_field=key.field,
    )
    return Envelope(data=LegacyUpload(file_name=stored, file_type=fields.get("fileType", "input")))


def _served_file(key: str, request: Request) -> Response:
    """The file behind a signed link, as the type its extension names (``storage.base``),
    streamed from whichever storage holds it."""
    expires = request.query_params.get("expires", "")
    signature = request.query_params.get("signature", "")
    svc = service(request)
    try:
        stored = svc.open_signed_file(key, expires, signature)
    except LinkRefused as refused:
        return JSONResponse(
            {"error": "forbidden", "message": refused.reason}, status_code=403, headers=_NO_SNIFF
        )
    except LinkedFileMissing:
        return JSONResponse(
            {"error": "not_found", "message": "no such file"}, status_code=404, headers=_NO_SNIFF
        )
    except StorageError as exc:
        # The storage does not answer (a bucket out of reach): a pause, not a missing file.
        log.warning("a file link could not be served: %s", exc)
        return JSONResponse(
            {"error": "unavailable", "message": "the storage does not answer; retry later"},
            status_code=503,
            headers={**_NO_SNIFF, "Retry-After": "5"},
        )
    return file_response(
        request, stored, lambda start, end: svc.read_file(stored, start, end), _NO_SNIFF
    )


@router.get(
    "/files/{key:path}",
    summary="A stored file, through a signed link",
    description="`HEAD` answers the same headers (length, type, `Accept-Ranges`) without the "
    "file; `Range` requests are answered with the part asked for.",
    response_class=FileResponse,
    responses=binary_response("application/octet-stream", "The file."),
)
def get_file(key: str, request: Request) -> Response:
    return _served_file(key, request)


@router.head("/files/{key:path}", include_in_schema=False)
def head_file(key: str, request: Request) -> Response:
    return _served_file(key, request)
