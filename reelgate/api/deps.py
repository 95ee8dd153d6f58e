"""Request-scoped helpers: the service, the caller's key, bodies, the base URL for links."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from reelgate.core.errors import InvalidParameters
from reelgate.service import Caller, Service

#: ``Authorization: Bearer <key>``; declared so that the OpenAPI document (and ``/docs``)
#: carries the security scheme. Missing or malformed headers are answered by ``authenticate``
#: with the contract's 1002, not by FastAPI.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="The API key: `Authorization: Bearer <key>` (v1 endpoints also take it in the "
    "body).",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


async def bearer_caller(request: Request, credentials: Credentials) -> Caller:
    """The key of a v2 request (a dependency: it runs before the body is read)."""
    token = credentials.credentials if credentials else None
    return await run_in_threadpool(service(request).authenticate, token)


async def caller_from_body(
    request: Request,
    body: Any,
    credentials: HTTPAuthorizationCredentials | None,
    field: str = "apiKey",
) -> Caller:
    """v1 endpoints carry the key in the body; the Bearer header is the fallback."""
    key = None
    if isinstance(body, dict):
        for name in (field, "apiKey", "apikey"):
            value = body.get(name)
            if isinstance(value, str) and value.strip():
                key = value
                break
    fallback = credentials.credentials if credentials else None
    return await run_in_threadpool(service(request).authenticate, key or fallback)


async def json_body(request: Request) -> Any:
    """The JSON body, or 1007 when it is not JSON. An empty body counts as ``{}``.

    Any content type is read as JSON: RunningHub clients (and ``curl -d``) do not all send
    ``application/json``.
    """
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidParameters("the request body is not valid JSON") from None


def base_url(request: Request) -> str:
    configured = service(request).settings.public_url
    return (configured or str(request.base_url)).rstrip("/")
