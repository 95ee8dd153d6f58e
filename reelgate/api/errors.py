"""The one place where errors become RunningHub bodies, shaped for the path at hand."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from reelgate.api import answers
from reelgate.core.errors import V2_MESSAGES, InternalError, RateLimited, ReelgateError

log = logging.getLogger("reelgate.api")


class MethodNotSupported(ReelgateError):
    """A path asked with a method it does not take.

    v1 has no code for it; ``412 TOKEN_INVALID`` is RunningHub's "wrong API path", which no
    client retries (the default ``500 UNKNOWN_ERROR`` reads as a server failure, retried for
    ever).
    """

    code = "1009"
    v1_code, v1_msg = 412, "TOKEN_INVALID"


def _body_for(path: str) -> Callable[[ReelgateError, Request], dict[str, Any]] | None:
    if path.startswith("/openapi/v2/media/upload"):
        return lambda error, _: answers.error_upload(error).to_wire()
    if path.startswith("/openapi/v2/queue/") or path.startswith(("/task/openapi/", "/uc/openapi/")):
        return lambda error, _: answers.error_v1(error).to_wire()
    if path.startswith("/openapi/v2/price-preview/"):
        return lambda error, _: answers.price_error(error).to_wire()
    if path.startswith("/openapi/v2/"):
        return lambda error, request: answers.error_task(
            error, getattr(request.state, "task_id", "")
        ).to_wire()
    return None


def error_response(request: Request, error: ReelgateError) -> JSONResponse:
    shape = _body_for(request.url.path)
    headers = _headers_for(error)
    if shape is None:
        status = 400 if error.http_status == 200 else error.http_status
        return JSONResponse(
            {"error": error.code, "message": error.message}, status_code=status, headers=headers
        )
    return JSONResponse(shape(error, request), status_code=error.http_status, headers=headers)


def _headers_for(error: ReelgateError) -> dict[str, str] | None:
    if isinstance(error, RateLimited):
        # Whole seconds, as HTTP's delay-seconds form requires; rounded up, never to 0.
        return {"Retry-After": str(max(1, math.ceil(error.retry_after)))}
    return None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ReelgateError)
    async def _domain(request: Request, exc: ReelgateError) -> JSONResponse:
        if exc.http_status >= 500:
            log.error(
                "%s on %s %s: %s",
                type(exc).__name__,
                request.method,
                request.url.path,
                exc.__cause__ or exc,
            )
        return error_response(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 405 and _body_for(request.url.path):
            return error_response(
                request, MethodNotSupported(f"{request.method} is not supported here")
            )
        return JSONResponse(
            {"error": str(exc.status_code), "message": exc.detail},
            status_code=exc.status_code,
            headers=exc.headers,  # a 405's Allow
        )

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        # A real crash: log it with its traceback and answer 500 (clients retry 5xx).
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        shape = _body_for(request.url.path)
        body = (
            shape(InternalError(), request)
            if shape
            else {"error": "1005", "message": V2_MESSAGES["1005"]}
        )
        return JSONResponse(body, status_code=500)
