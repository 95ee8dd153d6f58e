"""The web dashboard at ``/dashboard``: server-rendered pages (``pages``), a small script and
style (``static/``, committed: no build step, nothing fetched from elsewhere) and the dashboard's
own JSON endpoints and live stream (``api``)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from reelgate.api.dashboard import api, pages

STATIC = pages.HERE / "static"


def install(app: FastAPI) -> None:
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static")
