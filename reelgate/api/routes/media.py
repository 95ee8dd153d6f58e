"""Uploads (v2 binary and the legacy v1 form) and the signed file links."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from reelgate.api import wire
from reelgate.api.deps import base_url, caller_from_bearer, service
from reelgate.core.errors import InvalidParameters, StorageError

router = APIRouter(tags=["media"])


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


@router.post("/openapi/v2/media/upload/binary", summary="Upload a file (v2)")
async def upload_binary(request: Request) -> JSONResponse:
    caller = await caller_from_bearer(request)
    upload, _ = await _file_field(request)
    svc = service(request)
    key, kind, size = await run_in_threadpool(
        svc.upload,
        caller,
        upload.file,
        upload.filename or "",
        max_bytes=svc.settings.media.max_upload_bytes,
    )
    return JSONResponse(
        wire.ok_upload(
            {
                "type": kind,
                "download_url": svc.upload_url(base_url(request), key),
                "fileName": key,
                "size": str(size),
            }
        )
    )


@router.post("/task/openapi/upload", summary="Upload a file (v1, deprecated)")
async def upload_legacy(request: Request) -> JSONResponse:
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
    return JSONResponse(wire.ok_v1({"fileName": key, "fileType": fields.get("fileType", "input")}))


@router.get("/files/{key:path}", summary="A stored file, through a signed link", tags=["media"])
def get_file(key: str, request: Request) -> Response:
    svc = service(request)
    expires = request.query_params.get("expires", "")
    signature = request.query_params.get("signature", "")
    problem = svc.runtime.signer.verify(key, expires, signature)
    if problem:
        return JSONResponse({"error": "forbidden", "message": problem}, status_code=403)
    try:
        path = svc.runtime.storage.path(key)
    except StorageError:
        return JSONResponse({"error": "not_found", "message": "no such file"}, status_code=404)
    if not path.is_file():
        return JSONResponse({"error": "not_found", "message": "no such file"}, status_code=404)
    return FileResponse(path, filename=path.name)
