"""The app's outermost middleware, pure ASGI: the version header on every answer, and each
request's duration by route for the metrics.

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``: that one runs the app in a task of its
own and passes every message through a stream, a cost paid by every request for one header.
"""

from __future__ import annotations

import time

from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelgate import __version__

VERSION_HEADER = (b"x-reelgate-version", __version__.encode())
#: The route label of a request answered without a route: no route matched its path (which is
#: kept out of the labels: any path could be one), or it was refused before routing (a body
#: longer than its cap, by its declared length).
UNMATCHED = "unmatched"


class VersionAndTiming:
    """Adds ``X-Reelgate-Version`` to every answer the app gives and observes how long each
    request took in ``duration`` (labels: the matched route's template and the method)."""

    def __init__(self, app: ASGIApp, *, duration: Histogram) -> None:
        self.app = app
        self.duration = duration
        self._observers: dict[tuple[str, str], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), VERSION_HEADER]}
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_version)
        finally:
            self._observe(scope, time.perf_counter() - started)

    def _observe(self, scope: Scope, seconds: float) -> None:
        # The router leaves the route it matched in the scope; its template, not the path,
        # keeps the label set small (task ids and file names stay out).
        route = getattr(scope.get("route"), "path", None) or UNMATCHED
        labels = (route, scope["method"])
        observer = self._observers.get(labels)
        if observer is None:
            observer = self._observers[labels] = self.duration.labels(*labels)
        observer.observe(seconds)
