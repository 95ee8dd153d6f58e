"""The one place where errors become bodies, shaped for the path at hand: RunningHub's on its
paths, OpenAI's ``{"error": {message, type, param, code}}`` (with a 4xx or 5xx status) under
``/v1/``."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from reelgate.api import answers
from reelgate.core.errors import (
    V2_MESSAGES,
    InsufficientBalance,
    InternalError,
    RateLimited,
    ReelgateError,
)
from reelgate.wire.videos import ErrorBody, ErrorDetail

log = logging.getLogger("reelgate.api")


class MethodNotSupported(ReelgateError):
    """A path asked with a method it does not take.

    v1 has no code for it; ``412 TOKEN_INVALID`` is RunningHub's "wrong API path", which no
    client retries (the default ``500 UNKNOWN_ERROR`` reads as a server failure, retried for
    ever).
    """

    code = "1009"
    v1_code, v1_msg = 412, "TOKEN_INVALID"


#: Paths answered in OpenAI's error format.
OPENAI_PREFIX = "/v1/"
#: The HTTP status of each code under ``/v1/`` (others: 400). OpenAI answers business errors
#: with 4xx statuses; the body's ``code`` keeps the contract's code, so that one table of codes
#: serves both APIs.
OPENAI_STATUS = {
    "1002": 401,
    "1003": 429,
    "1004": 404,
    "1005": 500,
    "1006": 504,
    "1008": 413,
    "1009": 405,
    "1010": 503,
    "1011": 503,
    "1012": 502,
    "1014": 403,
    "416": 429,
    "421": 429,
    "804": 409,
    "805": 409,
    "813": 409,
}
#: OpenAI's error ``type`` by status (429s are told apart by their code).
OPENAI_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error(error: ReelgateError) -> tuple[int, ErrorBody]:
    """The status and body of an error under ``/v1/``."""
    status = OPENAI_STATUS.get(error.code, 400)
    if error.http_status >= 500:  # the database failed or is unreachable: still a 5xx
        status = max(status, error.http_status)
    kind = OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    if isinstance(error, InsufficientBalance):
        kind = "insufficient_quota"
    detail = ErrorDetail(
        message=error.message, type=kind, param=getattr(error, "param", None), code=error.code
    )
    return status, ErrorBody(error=detail)


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
    headers = _headers_for(error)
    if request.url.path.startswith(OPENAI_PREFIX):
        status, body = openai_error(error)
        return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)
    shape = _body_for(request.url.path)
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
    if isinstance(error, InsufficientBalance):
        # A 429 under /v1/, which OpenAI's SDKs retry unless told not to: coins do not come
        # back by waiting.
        return {"x-should-retry": "false"}
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
        if request.url.path.startswith(OPENAI_PREFIX):
            return _openai_http(request, exc)
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
        if request.url.path.startswith(OPENAI_PREFIX):
            return error_response(request, InternalError())
        shape = _body_for(request.url.path)
        body = (
            shape(InternalError(), request)
            if shape
            else {"error": "1005", "message": V2_MESSAGES["1005"]}
        )
        return JSONResponse(body, status_code=500)


def _openai_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """An unknown path or a wrong method under ``/v1/``, in OpenAI's shape."""
    if exc.status_code == 405:
        response = error_response(
            request, MethodNotSupported(f"{request.method} is not supported here")
        )
    else:
        detail = ErrorDetail(
            message=f"{exc.detail}: {request.method} {request.url.path}",
            type=OPENAI_TYPES.get(exc.status_code, "invalid_request_error"),
        )
        response = JSONResponse(
            ErrorBody(error=detail).model_dump(mode="json"), status_code=exc.status_code
        )
    if exc.headers:
        response.headers.update(exc.headers)  # a 405's Allow
    return response
