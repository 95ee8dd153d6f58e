"""The dashboard's pages: server-rendered shells that ``static/dashboard.js`` fills in.

The server never sees the key behind a page: pages carry no data of any key (they are the same
for everyone) and the script asks the API for that data with the key the browser keeps in
``sessionStorage``. So a page needs no cookie, and nothing secret is in a URL or a server log.
The forms carry the wire's limits, read from ``reelgate.wire.requests`` (one source for the API's
checks and the form's hints).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from reelgate import __version__
from reelgate.core.catalogue import CATALOGUE, MAX_EDIT_SECONDS, Family
from reelgate.core.status import TaskStatus
from reelgate.wire import requests as rules

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

router = APIRouter(prefix="/dashboard", include_in_schema=False)

#: Pages run only the dashboard's own script and style, and send requests only to this server:
#: an injected script could read the key from ``sessionStorage``. Outputs may be served from
#: another host (``REELGATE_PUBLIC_URL``, a bucket), hence media from anywhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data: blob: https: http:; media-src 'self' blob: https: http:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

LIMITS = {
    "promptMax": rules.PROMPT_MAX,
    "minDuration": rules.MIN_DURATION,
    "maxDuration": rules.MAX_DURATION,
    "defaultDuration": 5,
    "maxShots": rules.MAX_SHOTS,
    "maxReferenceImages": rules.MAX_REFERENCE_IMAGES,
    "maxElements": rules.MAX_ELEMENTS,
    "elementTextMax": rules.ELEMENT_TEXT_MAX,
    "urlMax": rules.URL_MAX,
    "webhookUrlMax": rules.WEBHOOK_URL_MAX,
    "maxEditSeconds": MAX_EDIT_SECONDS,
    "minSide": rules.MIN_SIDE,
    "maxSide": rules.MAX_SIDE,
    "maxSeed": rules.MAX_SEED,
}


def _models(family: Family | None = None) -> list[dict[str, str]]:
    return [
        {"path": spec.path, "tier": spec.tier, "family": spec.family.value}
        for spec in CATALOGUE.values()
        if family is None or spec.family is family
    ]


def _page(request: Request, template: str, page: str, title: str, **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(
        request,
        template,
        {
            "page": page,
            "title": title,
            "version": __version__,
            "limits": LIMITS,
            "statuses": [status.value for status in TaskStatus],
            "models": _models(),
            **context,
        },
        headers=SECURITY_HEADERS,
    )
    return response


@router.get("", response_class=HTMLResponse)
async def task_list(request: Request) -> HTMLResponse:
    return _page(request, "tasks.html", "tasks", "Tasks")


@router.get("/tasks/{task_id}", response_class=HTMLResponse)
async def task_page(request: Request, task_id: str) -> HTMLResponse:
    # Any text is passed on: the API answers for it (an unknown id is "not found" there).
    return _page(request, "task.html", "task", f"Task {task_id}", task_id=task_id)


@router.get("/new/image-to-video", response_class=HTMLResponse)
async def new_image_to_video(request: Request) -> HTMLResponse:
    return _page(
        request,
        "image_to_video.html",
        "image-to-video",
        "New image-to-video",
        choices=_models(Family.IMAGE_TO_VIDEO),
    )


@router.get("/new/video-edit", response_class=HTMLResponse)
async def new_video_edit(request: Request) -> HTMLResponse:
    return _page(
        request,
        "video_edit.html",
        "video-edit",
        "New video edit",
        choices=_models(Family.VIDEO_EDIT),
    )


@router.get("/account", response_class=HTMLResponse)
async def account(request: Request) -> HTMLResponse:
    return _page(request, "account.html", "account", "Account")
