"""A small client of an OpenAI-style ``/v1/videos`` server, and its errors in the contract's codes.

The servers behind the format answer it differently: OpenAI and reelgate with ``{"error":
{message, type, param, code}}`` (reelgate's ``code`` is the contract's), SGLang-Diffusion and
FastAPI servers with ``{"detail": …}``, others with text. ``refusal`` turns any of them into a
contract code: the server's own when it is one, else one chosen by the HTTP status. Failures
that may pass (the network, 429, 5xx) are ``RemoteTrouble``, which the engine waits out;
``RemoteRefused`` is final.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from reelgate.core.errors import V2_MESSAGES

#: Answers read in memory at most this large (a job record, an error); content is streamed.
MAX_ANSWER_BYTES = 1024 * 1024


class RemoteTrouble(Exception):
    """The server did not answer, or answered that it is busy or failing: worth waiting out.
    ``sent`` says whether it may have acted on the request: False when it surely did not (no
    connection, or an answer that refused it)."""

    def __init__(self, why: str, *, sent: bool = True, retry_after: float | None = None) -> None:
        super().__init__(why)
        self.sent = sent
        self.retry_after = retry_after


class RemoteRefused(Exception):
    """The server refused the request for good; ``code`` is the contract's code for it."""

    def __init__(self, code: str, message: str, *, status: int) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class RemoteVideo:
    """A job as the server reports it (read leniently: servers differ in what they send)."""

    id: str
    status: str
    #: 0–100, when the server says.
    progress: float | None
    error_code: str
    error_message: str
    #: ``openai-poll-after-ms`` of the answer, in seconds.
    poll_after: float | None = None

    @property
    def done(self) -> bool:
        return self.status in ("completed", "failed", "cancelled", "deleted")

    @classmethod
    def parse(cls, body: Any, poll_after: float | None = None) -> RemoteVideo:
        if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not body["id"]:
            raise RemoteTrouble(
                f"the server answered something that is not a video: {body!r}"[:300]
            )
        error = body.get("error")
        code, message = "", ""
        if isinstance(error, dict):
            code = str(error.get("code") or "")
            message = str(error.get("message") or "")
        elif isinstance(error, str):
            message = error
        progress = body.get("progress")
        return cls(
            id=body["id"],
            status=str(body.get("status") or "queued"),
            progress=float(progress) if isinstance(progress, (int, float)) else None,
            error_code=code,
            error_message=message,
            poll_after=poll_after,
        )


def contract_code(status: int, code: str) -> str:
    """The contract's code for a refusal: the server's own when it is one of the contract's
    (another reelgate), else by the HTTP status."""
    if code in V2_MESSAGES:
        return code
    if status in (401, 403):
        return "1010"  # the server refuses reelgate's own key: the operator's to fix
    if status == 413:
        return "1008"
    if status == 415:
        return "1013"
    if status in (400, 404, 409, 422):
        return "1007"
    return "1015"


def refusal(response: httpx.Response, body: Any) -> RemoteRefused | RemoteTrouble:
    """What an error answer means: trouble to wait out, or a refusal in the contract's code."""
    status = response.status_code
    message, code = _error_text(body) or (response.reason_phrase or f"HTTP {status}", "")
    if code == "416":  # coins short on the server: waiting does not bring them back
        return RemoteRefused(code, message, status=status)
    if status == 429 or status >= 500 or code in ("1003", "1010", "1011", "421"):
        retry_after = response.headers.get("retry-after", "")
        wait = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else None
        return RemoteTrouble(f"HTTP {status}: {message}"[:300], sent=False, retry_after=wait)
    return RemoteRefused(contract_code(status, code), message, status=status)


def _error_text(body: Any) -> tuple[str, str] | None:
    """(message, code) of an error body in any of the shapes servers use."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or ""), str(error.get("code") or "")
        if isinstance(error, str):
            return error, ""
        detail = body.get("detail") or body.get("message")
        if detail:
            return str(detail)[:500], ""
    if isinstance(body, str) and body.strip():
        return body.strip()[:500], ""
    return None


class VideosClient:
    """``/videos`` under ``base_url`` (the ``openai`` SDK's base URL, e.g. ``…/v1``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def check(self) -> str:
        """Why the server cannot be used ("" when it answers its list of videos)."""
        try:
            answer = self._http.get("/videos", params={"limit": 1})
        except httpx.HTTPError as error:
            return f"{self.base_url} does not answer: {error}"
        if answer.is_success:
            return ""
        return f"{self.base_url}/videos answers HTTP {answer.status_code}"

    def create(
        self,
        fields: dict[str, str],
        files: Mapping[str, tuple[str, BinaryIO, str]],
        *,
        idempotency_key: str,
    ) -> RemoteVideo:
        """``POST /videos`` as a multipart form (the format's own encoding, which every server
        of it reads)."""
        return self._video(
            "POST",
            "/videos",
            data=fields,
            files=files or None,
            headers={"Idempotency-Key": idempotency_key},
        )

    def retrieve(self, video_id: str) -> RemoteVideo:
        return self._video("GET", f"/videos/{video_id}")

    def delete(self, video_id: str) -> bool:
        """Cancel (or delete) a job; False when the server no longer has it."""
        try:
            self._send("DELETE", f"/videos/{video_id}")
        except RemoteRefused as refused:
            if refused.status == 404:
                return False
            raise
        return True

    def download(self, video_id: str, dest: Path) -> str:
        """The job's video into ``dest``; its content type."""
        try:
            with self._http.stream("GET", f"/videos/{video_id}/content") as answer:
                if not answer.is_success:
                    answer.read()
                    raise refusal(answer, _json_or_text(answer))
                with dest.open("wb") as out:
                    for chunk in answer.iter_bytes():
                        out.write(chunk)
                return str(answer.headers.get("content-type", ""))
        except httpx.HTTPError as error:
            raise RemoteTrouble(f"downloading {video_id}: {error}") from None

    # -- plumbing -----------------------------------------------------------------------------

    def _video(self, method: str, path: str, **kwargs: Any) -> RemoteVideo:
        answer, body = self._send(method, path, **kwargs)
        hint = answer.headers.get("openai-poll-after-ms", "")
        return RemoteVideo.parse(body, int(hint) / 1000 if hint.isdigit() else None)

    def _send(self, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, Any]:
        try:
            answer = self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise RemoteTrouble(f"{method} {path}: {error}", sent=False) from None
        except httpx.HTTPError as error:
            raise RemoteTrouble(f"{method} {path}: {error}") from None
        body = _json_or_text(answer)
        if not answer.is_success:
            raise refusal(answer, body)
        return answer, body


def _json_or_text(answer: httpx.Response) -> Any:
    content = answer.content[:MAX_ANSWER_BYTES]
    with contextlib.suppress(ValueError):
        return answer.json() if len(answer.content) <= MAX_ANSWER_BYTES else None
    return content.decode("utf-8", "replace")
