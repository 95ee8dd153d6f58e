"""Request-scoped helpers: the service, the caller's key, the base URL for links."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from reelgate.service import Caller, Service


def service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def caller_from_bearer(request: Request) -> Caller:
    svc = service(request)
    return await run_in_threadpool(svc.authenticate, bearer_token(request))


async def caller_from_body(request: Request, body: Any, field: str = "apiKey") -> Caller:
    """v1 endpoints carry the key in the body; the Bearer header is the fallback."""
    key = None
    if isinstance(body, dict):
        for name in (field, "apiKey", "apikey"):
            value = body.get(name)
            if isinstance(value, str) and value.strip():
                key = value
                break
    svc = service(request)
    return await run_in_threadpool(svc.authenticate, key or bearer_token(request))


def base_url(request: Request) -> str:
    configured = service(request).settings.public_url
    return (configured or str(request.base_url)).rstrip("/")
