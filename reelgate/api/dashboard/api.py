"""The dashboard's own JSON endpoints and its live stream, under ``/dashboard/api/``.

Authenticated with the same ``Authorization: Bearer`` key as the public API (counted against the
key's query budget). Everything the public API already does (submit, upload, query, price
preview, a key's own cancel, account and queue status) the page asks the public API for; these
list and watch tasks, and let an admin key manage keys. They are left out of the OpenAPI
document: the page and the server ship together, and nothing else should rely on them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel
from starlette.concurrency import run_in_threadpool

from reelgate.api.dashboard.views import (
    Detail,
    FleetItem,
    KeyItem,
    NewKeyItem,
    Page,
    TaskItem,
)
from reelgate.api.deps import base_url, bearer_caller, json_body, service
from reelgate.core.catalogue import describe_validation_error
from reelgate.core.errors import AdminOnly, InvalidApiKey, InvalidParameters
from reelgate.core.status import TaskStatus
from reelgate.dashboard import Dashboard, TaskQuery
from reelgate.service import Caller

router = APIRouter(prefix="/dashboard/api", include_in_schema=False)

CallerDep = Annotated[Caller, Depends(bearer_caller)]


async def admin_caller(caller: CallerDep) -> Caller:
    """The caller of an admin view: refused before its body is read."""
    if not caller.admin:
        raise AdminOnly()
    return caller


AdminDep = Annotated[Caller, Depends(admin_caller)]

#: Tasks on a page unless ``limit`` says otherwise.
DEFAULT_PAGE = 20
#: How often a stream looks at the database for changes (per open stream: a few indexed reads).
POLL_SECONDS = 0.5
#: A stream ends after this long and the page opens the next one from its cursor: a server that
#: is stopping waits for its open answers, so no stream may hold it for long.
STREAM_SECONDS = 20.0
#: A comment line at least this often, so that proxies keep a quiet stream open.
KEEPALIVE_SECONDS = 10.0


def dashboard(request: Request) -> Dashboard:
    return Dashboard(service(request))


def _ok(view: Any) -> JSONResponse:
    return JSONResponse(view.to_json(), headers={"Cache-Control": "no-store"})


@router.get("/me")
async def me(request: Request, caller: CallerDep) -> JSONResponse:
    """The signed-in key: what the page shows of it, and whether it is an admin."""
    key = await run_in_threadpool(dashboard(request).me, caller)
    return _ok(KeyItem.of(key))


@router.get("/tasks")
async def tasks(request: Request, caller: CallerDep) -> JSONResponse:
    """A page of tasks, newest first: ``status`` (repeatable), ``model``, ``key`` (admin),
    ``before`` (the previous page's ``older``), ``limit``."""
    query = _task_query(request)
    page = await run_in_threadpool(dashboard(request).tasks, caller, query)
    return _ok(Page.of(page))


@router.get("/tasks/{task_id}")
async def task(request: Request, caller: CallerDep, task_id: str) -> JSONResponse:
    """One task with its request, results (signed links), usage and history."""
    detail = await run_in_threadpool(dashboard(request).task, caller, task_id)
    return _ok(_detail(request, caller, detail))


@router.post("/tasks/{task_id}/cancel")
async def cancel(request: Request, caller: AdminDep, task_id: str) -> JSONResponse:
    """An admin cancels another key's task (a key cancels its own through the public API)."""
    detail = await run_in_threadpool(dashboard(request).cancel, caller, task_id)
    return _ok(_detail(request, caller, detail))


@router.get("/events")
async def events(request: Request, caller: CallerDep) -> StreamingResponse:
    """Server-sent events: a ``task`` event (a task list item) whenever one of the key's tasks
    (every key's for an admin) changes status or progress, each with the cursor as its ``id``;
    ``after`` resumes from a cursor. The stream ends after ``STREAM_SECONDS``; the page opens the
    next one from the last ``id``, and on ``event: signed-out`` stops."""
    board = dashboard(request)
    after = _cursor(request.query_params.get("after"))
    if after is None:
        after = await run_in_threadpool(board.cursor)
    return StreamingResponse(
        _stream(request, board, caller, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _stream(
    request: Request, board: Dashboard, caller: Caller, cursor: int
) -> AsyncIterator[str]:
    # ``retry``: how long a browser's EventSource waits before it opens the next stream.
    yield f"retry: 1000\nid: {cursor}\nevent: ready\ndata: {{}}\n\n"
    seen: dict[int, tuple[str, float]] = {}
    started = last_sent = time.monotonic()
    while time.monotonic() - started < STREAM_SECONDS:
        if await request.is_disconnected():
            return
        try:
            changes = await run_in_threadpool(board.changes, caller, cursor, seen)
        except InvalidApiKey:
            yield "event: signed-out\ndata: {}\n\n"
            return
        cursor, seen = changes.cursor, changes.open
        # Oldest first, so that a page that inserts each new task at the top ends newest first.
        for listed in reversed(changes.tasks):
            data = json.dumps(TaskItem.of(listed).to_json(), separators=(",", ":"))
            yield f"id: {cursor}\nevent: task\ndata: {data}\n\n"
            last_sent = time.monotonic()
        if time.monotonic() - last_sent >= KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)
    yield f"id: {cursor}\nevent: end\ndata: {{}}\n\n"


# -- admin --------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=False, strict=True, extra="forbid"
    )


B = TypeVar("B", bound=_Body)


class NewKey(_Body):
    name: str
    coins: int | None = None
    concurrency: int | None = None
    admin: bool = False


class Disable(_Body):
    cancel_running: bool = False


class Coins(_Body):
    #: Coins to add (negative: to take away).
    amount: int = Field(description="Coins to add; negative takes them away.")


@router.get("/keys")
async def keys(request: Request, caller: AdminDep) -> JSONResponse:
    rows = await run_in_threadpool(dashboard(request).keys, caller)
    return JSONResponse([KeyItem.of(key).to_json() for key in rows])


@router.post("/keys")
async def create_key(request: Request, caller: AdminDep) -> JSONResponse:
    """A new key; the answer carries the key itself, which is never shown again."""
    body = await _body(request, NewKey)
    board = dashboard(request)
    created = await run_in_threadpool(
        lambda: board.create_key(
            caller, body.name, coins=body.coins, concurrency=body.concurrency, admin=body.admin
        )
    )
    rows = await run_in_threadpool(board.keys, caller)
    key = next(row for row in rows if row.id == created.id)
    return _ok(NewKeyItem(api_key=created.api_key, key=KeyItem.of(key)))


@router.post("/keys/{key_id}/disable")
async def disable_key(request: Request, caller: AdminDep, key_id: int) -> JSONResponse:
    """Disable a key, cancelling its queued tasks (and running ones with ``cancelRunning``)."""
    body = await _body(request, Disable)
    done = await run_in_threadpool(
        lambda: dashboard(request).disable_key(caller, key_id, cancel_running=body.cancel_running)
    )
    summary = done.cancelled
    return JSONResponse(
        {
            "key": KeyItem.of(done.key).to_json(),
            "cancelled": len(summary.cancelled),
            "coinsRefunded": summary.refunded,
        }
    )


@router.post("/keys/{key_id}/coins")
async def add_coins(request: Request, caller: AdminDep, key_id: int) -> JSONResponse:
    body = await _body(request, Coins)
    key = await run_in_threadpool(dashboard(request).add_coins, caller, key_id, body.amount)
    return _ok(KeyItem.of(key))


@router.get("/fleet")
async def fleet(request: Request, caller: AdminDep) -> JSONResponse:
    """Queue depth, running tasks and the workers heard from recently."""
    found = await run_in_threadpool(dashboard(request).fleet, caller)
    return _ok(FleetItem.of(found))


# -- helpers ------------------------------------------------------------------------------


def _detail(request: Request, caller: Caller, detail: Any) -> Detail:
    svc = service(request)
    base = base_url(request)
    return Detail.of(
        detail, own=detail.key_id == caller.id, link=lambda key: svc.result_url(base, key)
    )


async def _body(request: Request, model: type[B]) -> B:
    raw = await json_body(request)
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise InvalidParameters(describe_validation_error(error)) from None


def _task_query(request: Request) -> TaskQuery:
    params = request.query_params
    statuses: set[TaskStatus] = set()
    for value in params.getlist("status"):
        if value.strip():
            try:
                statuses.add(TaskStatus(value.strip().upper()))
            except ValueError:
                raise InvalidParameters(f"no status {value!r}") from None
    limit = _number(params.get("limit"), "limit")
    return TaskQuery(
        statuses=frozenset(statuses),
        model=params.get("model") or None,
        key_id=_number(params.get("key"), "key"),
        before=_number(params.get("before"), "before"),
        limit=DEFAULT_PAGE if limit is None else limit,
    )


def _number(value: str | None, name: str) -> int | None:
    if value is None or not value.strip():
        return None
    text = value.strip()
    if not text.isdigit() or len(text) > 19 or int(text) >= 2**63:
        raise InvalidParameters(f"{name} must be a whole number, not {value!r}")
    return int(text)


def _cursor(value: str | None) -> int | None:
    return _number(value, "after")
