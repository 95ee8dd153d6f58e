"""Request-scoped helpers: the service, the caller's key, bodies, the base URL for links."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from reelgate.api.bodycap import declared_length, too_large
from reelgate.core import jsontext
from reelgate.core.errors import InvalidApiKey, InvalidParameters, RateLimited
from reelgate.limiting import Budget
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


V2_QUERY = "/openapi/v2/query"
#: Paths whose requests count against a key's query budget: reading tasks, the account and
#: the queue, price previews, cancelling, webhook records, the dashboard's own endpoints.
#: Everything else (model submits, uploads) counts against the submit budget.
QUERY_PATHS = (
    V2_QUERY,
    "/openapi/v2/queue/",
    "/openapi/v2/price-preview/",
    "/uc/openapi/",
    "/task/openapi/status",
    "/task/openapi/outputs",
    "/task/openapi/cancel",
    "/task/openapi/getWebhookDetail",
    "/task/openapi/retryWebhook",
    "/reelgate/",
    "/dashboard/api/",
)


#: OpenAI's Videos API: ``POST /v1/videos`` creates work; every other call reads or cancels.
OPENAI_PATHS = "/v1/"


def budget_of(path: str, method: str = "POST") -> Budget:
    if path.startswith(OPENAI_PATHS):
        return Budget.SUBMIT if method.upper() == "POST" else Budget.QUERY
    return Budget.QUERY if path.startswith(QUERY_PATHS) else Budget.SUBMIT


def service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


async def bearer_caller(request: Request, credentials: Credentials) -> Caller:
    """The key of a v2 request (a dependency: it runs before the body is read)."""
    token = credentials.credentials if credentials else None
    return await authenticate(request, token)


async def bearer_key(request: Request, credentials: Credentials) -> str | None:
    """The key of a v2 request whose route authenticates it in its own call into the service
    (a dependency: it runs before the body is read).

    Checked here only as far as answering a bad key before the body needs: a key found good a
    moment ago is not looked up again. The route's service call reads it afresh and counts it.
    """
    token = credentials.credentials if credentials else None
    svc = service(request)
    if not svc.recognised(token):
        await run_in_threadpool(svc.recognise, token)
    return token


async def body_or_refusal(request: Request) -> tuple[Any, InvalidParameters | None]:
    """The JSON body, or None and why it cannot be read: for routes that answer the key (and
    its rate limit) first, in the same service call as their work."""
    try:
        return await json_body(request), None
    except InvalidParameters as refused:
        return None, refused


def task_id_text(body: Any) -> str:
    """The task a body names, as answers about it repeat it ("" for none)."""
    task_id = body.get("taskId") if isinstance(body, dict) else None
    return str(task_id) if isinstance(task_id, (str, int)) and not isinstance(task_id, bool) else ""


async def authenticate(request: Request, api_key: str | None) -> Caller:
    """The key's caller, counted against the budget of the request's path."""
    try:
        return await run_in_threadpool(
            service(request).authenticate, api_key, budget_of(request.url.path, request.method)
        )
    except RateLimited:
        # The answer names the task that was asked about, as every answer about a task does;
        # the key comes before the body, so the body is read only now.
        if request.url.path == V2_QUERY and not getattr(request.state, "task_id", ""):
            request.state.task_id = await _task_id_in(request)
        raise


async def _task_id_in(request: Request) -> str:
    try:
        body = await json_body(request)
    except InvalidParameters:
        return ""
    return task_id_text(body)


async def v1_body_and_caller(
    request: Request, credentials: HTTPAuthorizationCredentials | None, field: str = "apiKey"
) -> tuple[Any, Caller]:
    """The body of a v1 request and its caller.

    The key travels in the body (``field``, ``apiKey`` or ``apikey``); the Bearer header is the
    fallback. The header is checked before the body is read: without a valid one, the body may
    not pass ``http.max_keyless_json_bytes`` (a key and a task id need far less), so that a
    client without a key cannot make the server read much.
    """
    token = credentials.credentials.strip() if credentials else ""
    header_caller: Caller | None = None
    header_refused: InvalidApiKey | None = None
    if token:
        try:
            header_caller = await authenticate(request, token)
        except InvalidApiKey as refused:
            header_refused = refused
    limits = service(request).settings.http
    keyless = header_caller is None
    body = await json_body(
        request, limit=limits.max_keyless_json_bytes if keyless else limits.max_json_bytes
    )
    key = _key_in(body, field)
    if key is not None and key != token:
        return body, await authenticate(request, key)
    if header_caller is not None:
        return body, header_caller
    if header_refused is not None:
        raise header_refused
    return body, await authenticate(request, None)


def _key_in(body: Any, field: str) -> str | None:
    if isinstance(body, dict):
        for name in (field, "apiKey", "apikey"):
            value = body.get(name)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


async def json_body(request: Request, *, limit: int | None = None) -> Any:
    """The JSON body, or 1007 when it is not JSON, is nested deeper than
    ``http.max_json_depth`` or is longer than ``limit`` bytes (the path's own cap is checked by
    ``bodycap``). An empty body counts as ``{}``.

    Any content type is read as JSON: RunningHub clients (and ``curl -d``) do not all send
    ``application/json``.
    """
    raw = await request.body() if limit is None else await _body_within(request, limit)
    if not raw.strip():
        return {}
    try:
        return jsontext.loads(raw, max_depth=service(request).settings.http.max_json_depth)
    except jsontext.JsonTextError as error:
        raise InvalidParameters(str(error)) from None


async def _body_within(request: Request, limit: int) -> bytes:
    """The body, refused (and left unread) once it passes ``limit`` bytes."""
    declared = declared_length(request.headers)
    if declared is not None and declared > limit:
        raise _keyless_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _keyless_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _keyless_too_large(limit: int) -> InvalidParameters:
    return too_large(
        "the request body", limit, "without a valid key in an Authorization: Bearer header"
    )


def base_url(request: Request) -> str:
    configured = service(request).settings.public_url
    return (configured or str(request.base_url)).rstrip("/")
