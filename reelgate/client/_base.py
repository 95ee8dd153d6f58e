"""What ``Client`` and ``AsyncClient`` share: building requests and reading answers, no I/O.

The two twins differ only in how they send, sleep and stream; every rule about the wire (paths,
envelopes, error codes, headers, retries, file names) lives here once.
"""

from __future__ import annotations

import email.utils
import logging
import os
import re
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Final, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ValidationError

from reelgate import __version__
from reelgate.client._config import (
    DEFAULT_POLL,
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
    PollPolicy,
    RetryPolicy,
    UseClientDefault,
    is_runninghub,
    resolve_api_key,
    resolve_base_url,
)
from reelgate.client._errors import (
    AccessDenied,
    APIError,
    ConnectError,
    DownloadError,
    FinalError,
    InsufficientBalance,
    InvalidApiKey,
    NetworkError,
    QueueFull,
    RateLimited,
    ReelgateError,
    RequestValidationError,
    ResponseLost,
    ServerError,
    StillRunning,
    TaskCancelled,
    TaskFailed,
    TaskNotFound,
    UnexpectedResponse,
    error_class,
)
from reelgate.client._models import (
    REQUEST_MODELS,
    AccountStatus,
    ModelRequest,
    Output,
    PricePreview,
    QueueStatus,
    TaskInfo,
    TaskStatus,
    UploadedFile,
    parse_request,
)
from reelgate.client._upload import MediaRef, MemoryUploadCache, UploadCache, find_local_media
from reelgate.client._webhooks import WebhookDetail

logger = logging.getLogger("reelgate.client")

#: Codes that refuse a request; a task never ends with one of them.
_REQUEST_CODES: frozenset[str] = frozenset().union(
    InvalidApiKey.codes,
    AccessDenied.codes,
    RateLimited.codes,
    QueueFull.codes,
    InsufficientBalance.codes,
    TaskNotFound.codes,
    {"1007", "301", "1009"},
)

IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
POLL_AFTER_HEADER: Final = "X-Reelgate-Poll-After"
PROGRESS_HEADER: Final = "X-Reelgate-Progress"
_MODEL_PATH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*(/[A-Za-z0-9][A-Za-z0-9._\-]*)*$")


class BaseClient:
    """Configuration, request building and answer parsing for both clients."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryPolicy = DEFAULT_RETRY,
        poll: PollPolicy = DEFAULT_POLL,
        wait_timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        idempotency: bool | None = None,
        upload_cache: UploadCache | None = None,
    ) -> None:
        self.base_url = resolve_base_url(base_url)
        self._api_key = resolve_api_key(api_key)
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.retry = retry
        self.poll = poll
        self.wait_timeout = wait_timeout
        #: Whether the server honours ``Idempotency-Key`` (reelgate does, RunningHub does not),
        #: which makes retrying a submit with an unknown outcome safe.
        self.idempotency = not is_runninghub(self.base_url) if idempotency is None else idempotency
        self.uploads: UploadCache = (
            upload_cache if upload_cache is not None else MemoryUploadCache()
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key='***')"

    # -- building requests ----------------------------------------------------------------

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._api_key.reveal()}",
            "User-Agent": f"reelgate-client/{__version__}",
            "Accept": "application/json",
        }
        headers.update(extra or {})
        return headers

    def _url(self, path: str) -> str:
        return self.base_url + path

    def _json_request(
        self,
        http: httpx.Client | httpx.AsyncClient,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Request:
        return http.build_request(
            method,
            self._url(path),
            json=body,
            headers=self._headers(headers),
            timeout=self.timeout,
        )

    def _query_request(self, http: httpx.Client | httpx.AsyncClient, task_id: str) -> httpx.Request:
        return self._json_request(http, "POST", "/openapi/v2/query", {"taskId": task_id})

    def _submit_request(
        self,
        http: httpx.Client | httpx.AsyncClient,
        model_path: str,
        body: dict[str, Any],
        idempotency_key: str | None,
    ) -> httpx.Request:
        headers = {IDEMPOTENCY_HEADER: idempotency_key} if idempotency_key else None
        return self._json_request(http, "POST", f"/openapi/v2/{model_path}", body, headers)

    def _cancel_request(
        self, http: httpx.Client | httpx.AsyncClient, task_id: str
    ) -> httpx.Request:
        body = {"apiKey": self._api_key.reveal(), "taskId": task_id}
        return self._json_request(http, "POST", "/task/openapi/cancel", body)

    def _account_request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        return self._json_request(
            http, "POST", "/uc/openapi/accountStatus", {"apikey": self._api_key.reveal()}
        )

    def _queue_request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        return self._json_request(http, "GET", "/openapi/v2/queue/status")

    def _webhook_detail_request(
        self, http: httpx.Client | httpx.AsyncClient, task_id: str
    ) -> httpx.Request:
        return self._json_request(
            http,
            "POST",
            "/task/openapi/getWebhookDetail",
            {"apiKey": self._api_key.reveal(), "taskId": task_id},
        )

    def _retry_webhook_request(
        self, http: httpx.Client | httpx.AsyncClient, webhook_id: str, url: str | None
    ) -> httpx.Request:
        body = {"apiKey": self._api_key.reveal(), "webhookId": webhook_id}
        if url is not None:
            body["webhookUrl"] = url
        return self._json_request(http, "POST", "/task/openapi/retryWebhook", body)

    def _webhook_secret_request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        return self._json_request(http, "GET", "/reelgate/v1/webhook-secret")

    def _price_request(
        self, http: httpx.Client | httpx.AsyncClient, model_path: str, body: dict[str, Any]
    ) -> httpx.Request:
        return self._json_request(http, "POST", f"/openapi/v2/price-preview/{model_path}", body)

    def _upload_request(
        self, http: httpx.Client | httpx.AsyncClient, stream: BinaryIO, name: str, content_type: str
    ) -> httpx.Request:
        stream.seek(0)
        return http.build_request(
            "POST",
            self._url("/openapi/v2/media/upload/binary"),
            files={"file": (name, stream, content_type)},
            headers=self._headers(),
            timeout=self.timeout,
        )

    def _download_request(self, http: httpx.Client | httpx.AsyncClient, url: str) -> httpx.Request:
        # Result links are signed; the API key is never sent to them (they may be on another host).
        return http.build_request(
            "GET",
            url,
            headers={"User-Agent": f"reelgate-client/{__version__}"},
            timeout=self.timeout,
        )

    # -- preparing submits ------------------------------------------------------------------

    @staticmethod
    def _check_model_path(model_path: str) -> str:
        path = model_path.strip().strip("/").removeprefix("openapi/v2/")
        if not _MODEL_PATH.match(path):
            raise RequestValidationError(f"not a model path: {model_path!r}")
        return path

    @staticmethod
    def _plan(
        request: ModelRequest | str,
        payload: Mapping[str, Any] | None,
        *,
        verbatim: bool = False,
    ) -> tuple[str, dict[str, Any], list[MediaRef]]:
        """Model path, wire body and local media of a typed request or a raw ``run()``."""
        if isinstance(request, ModelRequest):
            if payload is not None:
                raise RequestValidationError("pass either a request model or a payload, not both")
            body = request.to_payload()
            return request.model_path, body, find_local_media(body, type(request).media_fields)
        path = BaseClient._check_model_path(request)
        body = dict(payload or {})
        if verbatim:
            return path, body, []
        model = REQUEST_MODELS.get(path)
        fields = None
        if model is not None:
            # Check the fields the SDK knows; unknown ones pass through as RunningHub ignores them.
            known = {
                k: v for k, v in body.items() if k in {f.alias for f in model.model_fields.values()}
            }
            parse_request(model, known)
            fields = model.media_fields
        return path, body, find_local_media(body, fields)

    def _idempotency_key(self, given: str | None) -> str | None:
        if given is not None:
            return given
        return uuid.uuid4().hex if self.idempotency else None

    def _may_retry(self, error: ReelgateError) -> bool:
        """Reads, uploads and cancels are safe to repeat."""
        return error.retryable or isinstance(error, ResponseLost)

    def _may_retry_submit(self, error: ReelgateError, idempotency_key: str | None) -> bool:
        """A submit is repeated only when no task can exist, or the server de-duplicates it."""
        if error.submit_safe:
            return True
        safe = self.idempotency and idempotency_key is not None
        return safe and (error.retryable or isinstance(error, ResponseLost))

    # -- reading answers ----------------------------------------------------------------------

    @staticmethod
    def _transport_error(exc: httpx.TransportError, request: httpx.Request) -> NetworkError:
        where = f"{request.method} {request.url.copy_with(query=None)}"
        if isinstance(
            exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout | httpx.ProxyError
        ):
            return ConnectError(f"could not connect for {where}: {exc!r}", request=request)
        return ResponseLost(
            f"{where} was sent but its answer was lost ({type(exc).__name__}); "
            f"the server may have acted on it",
            request=request,
        )

    @staticmethod
    def _log(request: httpx.Request, response: httpx.Response, started: float) -> None:
        logger.debug(
            "%s %s -> HTTP %d in %.0f ms",
            request.method,
            request.url.path,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )

    @staticmethod
    def _body(response: httpx.Response) -> Any:
        """The JSON answer; HTTP-level failures raise the matching error."""
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        status = response.status_code
        if status < 300 and body is not None:
            return body
        code = ""
        message = f"HTTP {status} from {response.request.method} {response.request.url.path}"
        if isinstance(body, dict):
            code = str(body.get("errorCode") or body.get("code") or "").strip()
            text = body.get("errorMessage") or body.get("message") or body.get("msg")
            message = f"{message}: {text}" if text else message
        if status == 429:
            raise RateLimited(
                message,
                code=code or "1003",
                http_status=status,
                response=response,
                retry_after=_retry_after(response),
            )
        if status >= 500:
            cls = error_class(code) if code else ServerError
            if not cls.retryable:
                cls = ServerError
            raise cls(message, code=code, http_status=status, response=response)
        if status in (401, 403):
            raise InvalidApiKey(
                message, code=code or str(status), http_status=status, response=response
            )
        if status == 404:
            raise UnexpectedResponse(
                f"{message} (is the base URL right?)",
                code=code,
                http_status=status,
                response=response,
            )
        if status >= 300:
            cls = error_class(code) if code else FinalError
            raise cls(message, code=code, http_status=status, response=response)
        raise UnexpectedResponse(
            f"{message}: the answer is not JSON", http_status=status, response=response
        )

    @staticmethod
    def _raise_code(body: dict[str, Any], response: httpx.Response, task_id: str | None) -> None:
        """Raise the error a v2 ``errorCode`` or a v1/upload ``code`` stands for, if any."""
        code = str(body.get("errorCode") or "").strip()
        message = body.get("errorMessage") or None
        if code in ("", "0") and "code" in body and str(body["code"]) not in ("0", "200"):
            code = str(body["code"]).strip()
            message = body.get("errorMessage") or body.get("msg") or body.get("message") or None
        if code in ("", "0"):
            return
        cls = error_class(code)
        if issubclass(cls, RateLimited):
            raise cls(
                message,
                code=code,
                task_id=task_id,
                response=response,
                retry_after=_retry_after(response),
            )
        raise cls(message, code=code, task_id=task_id, response=response)

    def _parse_task(self, response: httpx.Response, task_id: str | None = None) -> TaskInfo:
        """A submit's or query's answer (contract §5); errors before a task exists raise."""
        body = self._body(response)
        if not isinstance(body, dict):
            raise UnexpectedResponse("the task answer is not a JSON object", response=response)
        tid = str(body.get("taskId") or "") or task_id
        status = _status(body.get("status"), response)
        code = _code(body.get("errorCode"))
        # A refused request (bad key, unknown task, limits, invalid body) is never a task's own
        # failure, even when the answer says FAILED or echoes the taskId; and RunningHub's kit
        # treats any errorCode as a failure, whatever the status says.
        if code and (
            code in _REQUEST_CODES or not body.get("taskId") or not (status and status.is_terminal)
        ):
            self._raise_code(body, response, tid)
        if status is None or not tid:
            raise UnexpectedResponse(
                f"the task answer has no taskId or status: {sorted(body)}", response=response
            )
        hints = {
            "progress": _header_float(response, PROGRESS_HEADER),
            "poll_after": _header_float(response, POLL_AFTER_HEADER),
        }
        return _validate(TaskInfo, {**body, "taskId": tid, **hints}, response)

    def _parse_envelope(self, response: httpx.Response) -> Any:
        """``data`` of a ``{code, msg|message, data}`` answer (v1 and v2 management endpoints)."""
        body = self._body(response)
        if not isinstance(body, dict) or "code" not in body:
            raise UnexpectedResponse("expected a {code, msg, data} answer", response=response)
        self._raise_code(body, response, None)
        return body.get("data")

    def _parse_upload(self, response: httpx.Response, sha256: str) -> UploadedFile:
        data = self._parse_envelope(response)
        if not isinstance(data, dict) or not data.get("download_url"):
            raise UnexpectedResponse(
                "the upload answer has no data.download_url", response=response
            )
        return _validate(UploadedFile, {**data, "sha256": sha256}, response)

    def _parse_cancel(self, response: httpx.Response, task_id: str) -> None:
        try:
            self._parse_envelope(response)
        except APIError as exc:
            exc.task_id = task_id
            raise

    def _parse_account(self, response: httpx.Response) -> AccountStatus:
        data = self._parse_envelope(response)
        return _validate(AccountStatus, data if isinstance(data, dict) else {}, response)

    def _parse_queue(self, response: httpx.Response) -> QueueStatus:
        data = self._parse_envelope(response)
        return _validate(QueueStatus, data if isinstance(data, dict) else {}, response)

    def _parse_webhook_detail(self, response: httpx.Response) -> WebhookDetail:
        data = self._parse_envelope(response)
        return _validate(WebhookDetail, data if isinstance(data, dict) else {}, response)

    def _parse_done(self, response: httpx.Response) -> None:
        self._parse_envelope(response)

    def _parse_webhook_secret(self, response: httpx.Response) -> str:
        body = self._body(response)
        if not isinstance(body, dict) or not isinstance(body.get("webhookSecret"), str):
            raise UnexpectedResponse("the answer has no webhookSecret", response=response)
        return str(body["webhookSecret"])

    def _parse_price(self, response: httpx.Response) -> PricePreview:
        body = self._body(response)
        if not isinstance(body, dict):
            raise UnexpectedResponse("the price answer is not a JSON object", response=response)
        self._raise_code(body, response, None)
        return _validate(PricePreview, body, response)

    # -- finishing waits ----------------------------------------------------------------------

    @staticmethod
    def _finish(info: TaskInfo, raise_on_failure: bool) -> TaskInfo:
        if raise_on_failure and info.status is TaskStatus.FAILED:
            raise TaskFailed(info)
        if raise_on_failure and info.status is TaskStatus.CANCEL:
            raise TaskCancelled(info)
        return info

    @staticmethod
    def _downloadable(info: TaskInfo) -> list[tuple[str, Output]]:
        """File names and outputs of a finished task: ``<taskId>_<n>.<ext>``, n from 1."""
        if info.status is TaskStatus.FAILED:
            raise TaskFailed(info)
        if info.status is TaskStatus.CANCEL:
            raise TaskCancelled(info)
        if info.status is not TaskStatus.SUCCESS:
            raise StillRunning(info, None)
        return [(output_name(info.task_id, n, o), o) for n, o in enumerate(info.outputs, 1)]


class AtomicFile:
    """Writes ``target`` through a temporary file in the same directory, then renames it."""

    def __init__(self, target: Path) -> None:
        self.target = target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        self._file = os.fdopen(fd, "wb")
        self._temp = Path(name)
        self.written = 0

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self.written += len(chunk)

    def commit(self, expected: int | None) -> Path:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if expected is not None and expected != self.written:
            self._temp.unlink(missing_ok=True)
            raise DownloadError(
                f"{self.target.name}: got {self.written} bytes, the server announced {expected}"
            )
        os.replace(self._temp, self.target)
        return self.target

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._file.closed:
            self._file.close()
        self._temp.unlink(missing_ok=True)


def expected_length(response: httpx.Response) -> int | None:
    """The announced body length, when it can be checked (no content encoding)."""
    value = response.headers.get("Content-Length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def check_download_status(response: httpx.Response, name: str) -> None:
    if response.status_code != 200:
        error: type[ReelgateError] = DownloadError if response.status_code >= 500 else FinalError
        raise error(
            f"{name}: HTTP {response.status_code} from the result link "
            f"(result links expire; query the task again for a fresh one)"
        )


def output_name(task_id: str, n: int, output: Output) -> str:
    ext = output.output_type.strip().lower().lstrip(".")
    if not re.fullmatch(r"[a-z0-9]{1,10}", ext):
        ext = ""
    if not ext and output.url:
        ext = Path(urlsplit(output.url).path).suffix.lower().lstrip(".")
        ext = ext if re.fullmatch(r"[a-z0-9]{1,10}", ext) else ""
    if not ext:
        ext = "txt" if output.url is None else "bin"
    safe_id = re.sub(r"[^A-Za-z0-9_-]", "_", task_id)
    return f"{safe_id}_{n}.{ext}"


def wait_timeout(client: BaseClient, timeout: float | UseClientDefault | None) -> float | None:
    """The deadline of one ``wait()``: the argument, or the client's when not given."""
    return client.wait_timeout if isinstance(timeout, UseClientDefault) else timeout


Answer = TypeVar("Answer", bound=BaseModel)


def _validate(model: type[Answer], data: dict[str, Any], response: httpx.Response) -> Answer:
    """An answer parsed into its wire model; a shape the model cannot read is unexpected."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UnexpectedResponse(
            f"the answer does not match {model.__name__}: {exc.errors(include_url=False)[0]['msg']}"
            f" at {'.'.join(map(str, exc.errors(include_url=False)[0]['loc']))}",
            response=response,
        ) from None


def _status(value: object, response: httpx.Response) -> TaskStatus | None:
    """A wire status; ``None`` when absent."""
    if not str(value or "").strip():
        return None
    try:
        return TaskStatus.from_wire(value)
    except ValueError:
        raise UnexpectedResponse(f"unknown task status {value!r}", response=response) from None


def _code(value: object) -> str:
    code = str(value if value is not None else "").strip()
    return "" if code == "0" else code


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.replace(".", "", 1).isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _header_float(response: httpx.Response, name: str) -> float | None:
    value = response.headers.get(name)
    try:
        return None if value is None else float(value)
    except ValueError:
        return None
