"""Request bodies held to a cap before and while they are read: a pure ASGI middleware.

Each path family has its cap: the two upload endpoints their file cap (``media``) plus room for
the multipart framing, ``POST /v1/videos`` the upload's cap plus a model body's (its form carries
an ``input_reference`` file and fields that may hold ``data:`` URLs), model endpoints
``http.max_model_json_bytes`` (media fields may carry ``data:`` URIs), every other path
``http.max_json_bytes``. A body whose ``Content-Length`` is larger is refused at once, before a
byte of it is read; a chunked body, or one longer than it said, is counted as it arrives and
refused as soon as it passes the cap. The refusal is the family's own answer (uploads and
``/v1/videos`` ``1008``, the rest ``1007``), shaped by ``api.errors``: never a 5xx.

An answer may start before the body was read to its end: a refusal, or a key refused before the
body. The rest of a short body is then read and dropped, so that the connection stays usable for
the client's next request; a long one is not read: the answer says ``Connection: close`` and the
server closes the connection after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelgate.api.errors import error_response
from reelgate.config import MB, Settings
from reelgate.core.errors import InvalidParameters, ReelgateError
from reelgate.uploads import upload_too_large

UPLOAD_PATH = "/openapi/v2/media/upload/binary"
LEGACY_UPLOAD_PATH = "/task/openapi/upload"
VIDEOS_PATH = "/v1/videos"
#: Room for the multipart framing and the small fields around an upload's file.
FORM_OVERHEAD = 256 * 1024
#: Paths under ``/openapi/v2/`` that are not models; the others are submits and price previews.
_NOT_MODELS = ("/openapi/v2/query", "/openapi/v2/queue/", "/openapi/v2/media/")
#: The most of an unread body that is read and dropped to keep the connection open, and how
#: long that may take; past either, the connection is closed instead.
DRAIN_BYTES = 4 * MB
DRAIN_SECONDS = 5.0
_CLOSE = (b"connection", b"close")


def size_text(size: int) -> str:
    """A byte count as the refusals name it: whole megabytes where it is one."""
    return f"{size // MB} MB" if size >= MB and size % MB == 0 else f"{size} bytes"


def too_large(what: str, limit: int, when: str = "") -> InvalidParameters:
    return InvalidParameters(
        f"{what} is larger than {size_text(limit)}{' ' + when if when else ''}"
    )


@dataclass(frozen=True)
class Cap:
    """How much of a body a path reads; ``file_limit`` is set on the upload paths."""

    limit: int
    file_limit: int | None = None

    def refusal(self) -> ReelgateError:
        if self.file_limit is not None:
            return upload_too_large(self.file_limit)
        return too_large("the request body", self.limit)


def cap_for(path: str, settings: Settings) -> Cap:
    media = settings.media
    if path == UPLOAD_PATH:
        return Cap(media.max_upload_bytes + FORM_OVERHEAD, media.max_upload_bytes)
    if path == LEGACY_UPLOAD_PATH:
        return Cap(media.max_legacy_upload_bytes + FORM_OVERHEAD, media.max_legacy_upload_bytes)
    if path == VIDEOS_PATH:
        limit = media.max_upload_bytes + settings.http.max_model_json_bytes + FORM_OVERHEAD
        return Cap(limit, media.max_upload_bytes)
    if path.startswith("/openapi/v2/") and not path.startswith(_NOT_MODELS):
        return Cap(settings.http.max_model_json_bytes)
    return Cap(settings.http.max_json_bytes)


def declared_length(headers: Headers) -> int | None:
    """The ``Content-Length`` a request declared (None: chunked, absent or not a number)."""
    value = headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None


class BodyCap:
    """The middleware: install it inside the one that stamps the version header."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = _Body(scope, receive, cap_for(scope["path"], self.settings))
        guarded_send = body.sender(send)
        if body.declared is not None and body.declared > body.cap.limit:
            answer = error_response(Request(scope), body.cap.refusal())
            await answer(scope, body.receive, guarded_send)
            return
        try:
            await self.app(scope, body.receive, guarded_send)
        except ClientDisconnect:
            # The client left in the middle of its body: no failure of the server's, worth no
            # traceback. The answer goes nowhere (uvicorn drops it), but the middleware outside
            # expects one.
            if not body.started:
                gone = InvalidParameters("the connection closed before the body ended")
                await error_response(Request(scope), gone)(scope, body.receive, guarded_send)


class _Body:
    """One request's body as the app reads it: counted against the cap; drained, or the
    connection closed, when the answer starts before the body was read to its end."""

    def __init__(self, scope: Scope, receive: Receive, cap: Cap) -> None:
        headers = Headers(scope=scope)
        self.cap = cap
        self._receive = receive
        self.declared = declared_length(headers)
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.expects_continue = headers.get("expect", "").lower() == "100-continue"
        self.received = 0
        #: Whether the body was read to its end (a request without one has nothing to read).
        self.complete = not chunked and not self.declared
        self.disconnected = False
        self.reading = False
        #: Whether the answer has started.
        self.started = False

    def _count(self, message: Message) -> None:
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if not message.get("more_body", False):
                self.complete = True
        elif message["type"] == "http.disconnect":
            self.disconnected = True

    async def receive(self) -> Message:
        self.reading = True
        try:
            message = await self._receive()
        finally:
            self.reading = False
        self._count(message)
        if self.received > self.cap.limit:
            raise self.cap.refusal()
        return message

    def sender(self, send: Send) -> Send:
        async def send_after_body(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.started = True
                if not (self.complete or self.disconnected or await self._drain()):
                    message = {**message, "headers": [*message.get("headers", []), _CLOSE]}
            await send(message)

        return send_after_body

    async def _drain(self) -> bool:
        """Read and drop the rest of a short body; False when the connection must close."""
        if self.reading:
            return False  # the app itself waits on the body (for a disconnect): leave it be
        if self.declared is not None and self.declared - self.received > DRAIN_BYTES:
            return False
        if self.expects_continue and self.received == 0:
            return False  # asking for the body would send the client its "100 Continue"
        dropped = 0
        with anyio.move_on_after(DRAIN_SECONDS):
            while not (self.complete or self.disconnected):
                message = await self._receive()
                self._count(message)
                dropped += len(message.get("body", b""))
                if dropped > DRAIN_BYTES:
                    return False
        return self.complete
