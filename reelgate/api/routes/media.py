"""Uploads (v2 binary and the legacy v1 form) and the signed file links."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from reelgate.api.deps import base_url, bearer_caller, service
from reelgate.api.openapi import binary_response, error_codes, multipart_body
from reelgate.core.errors import InvalidParameters, LinkedFileMissing, LinkRefused
from reelgate.service import Caller
from reelgate.wire import Envelope, LegacyUpload, UploadedFile, UploadEnvelope

router = APIRouter(tags=["media"])

_FILE = {"type": "string", "format": "binary", "description": "The file's bytes."}


async def _file_field(request: Request) -> tuple[UploadFile, dict[str, str]]:
    try:
        form = await request.form()
    except Exception as exc:  # the multipart parser raises several unrelated types
        raise InvalidParameters(f"the body must be multipart/form-data: {exc}") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidParameters("multipart field 'file' is required")
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    return upload, fields


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
    upload, _ = await _file_field(request)
    svc = service(request)
    key, kind, size = await run_in_threadpool(
        svc.upload,
        caller,
        upload.file,
        upload.filename or "",
        max_bytes=svc.settings.media.max_upload_bytes,
    )
    uploaded = UploadedFile(
        type=kind,
        download_url=svc.upload_url(base_url(request), key),
        file_name=key,
        size=str(size),
    )
    return UploadEnvelope(data=uploaded)


@router.post(
    "/task/openapi/upload",
    summary="Upload a file (v1, deprecated)",
    description="The key travels as the form field `apiKey`; files up to 30 MB.",
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
async def upload_legacy(request: Request) -> Envelope[LegacyUpload]:
    svc = service(request)
    upload, fields = await _file_field(request)
    caller = await run_in_threadpool(svc.authenticate, fields.get("apiKey") or None)
    key, _kind, _size = await run_in_threadpool(
        svc.upload,
        caller,
        upload.file,
        upload.filename or "",
        max_bytes=svc.settings.media.max_legacy_upload_bytes,
    )
    return Envelope(data=LegacyUpload(file_name=key, file_type=fields.get("fileType", "input")))


@router.get(
    "/files/{key:path}",
    summary="A stored file, through a signed link",
    response_class=FileResponse,
    responses=binary_response("application/octet-stream", "The file."),
)
def get_file(key: str, request: Request) -> Response:
    expires = request.query_params.get("expires", "")
    signature = request.query_params.get("signature", "")
    try:
        path = service(request).open_signed_file(key, expires, signature)
    except LinkRefused as refused:
        return JSONResponse({"error": "forbidden", "message": refused.reason}, status_code=403)
    except LinkedFileMissing:
        return JSONResponse({"error": "not_found", "message": "no such file"}, status_code=404)
    return FileResponse(path, filename=path.name)
