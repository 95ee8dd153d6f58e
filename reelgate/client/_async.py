"""``AsyncClient``: the asyncio (and trio) client, and ``AsyncTask``, its handle on one task."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import anyio
import httpx

from reelgate.client._base import (
    AtomicFile,
    BaseClient,
    check_download_status,
    expected_length,
    logger,
    wait_timeout,
)
from reelgate.client._config import (
    DEFAULT_POLL,
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
    USE_CLIENT_DEFAULT,
    PollPolicy,
    RetryPolicy,
    UseClientDefault,
)
from reelgate.client._errors import ReelgateError, RequestValidationError, StillRunning
from reelgate.client._models import (
    AccountStatus,
    KlingO3ProImageToVideo,
    KlingO3ProVideoEdit,
    KlingO3StdImageToVideo,
    KlingO3StdVideoEdit,
    ModelRequest,
    PricePreview,
    QueueStatus,
    TaskInfo,
    TaskStatus,
    UploadedFile,
    parse_request,
)
from reelgate.client._poll import Poller, Retrier
from reelgate.client._upload import LocalMedia, UploadCache, as_local, replace_media
from reelgate.client._webhooks import WebhookDetail

T = TypeVar("T")
Tier = Literal["pro", "std"]
MediaInput = str | Path | bytes


class AsyncTask:
    """A submitted task: ``await wait()`` for it, ``download()`` its outputs, or ``cancel()`` it.

    ``AsyncClient.task(task_id)`` re-attaches to a task submitted earlier (by any client).
    """

    def __init__(self, client: AsyncClient, info: TaskInfo) -> None:
        self._client = client
        #: The task as last seen.
        self.info = info

    def __repr__(self) -> str:
        return f"AsyncTask(id={self.id!r}, status={self.status.value})"

    @property
    def id(self) -> str:
        return self.info.task_id

    @property
    def status(self) -> TaskStatus:
        return self.info.status

    async def refresh(self) -> TaskInfo:
        """Query the task now."""
        self.info = await self._client.query(self.id)
        return self.info

    async def wait(
        self,
        timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
        *,
        on_update: Callable[[TaskInfo], None] | None = None,
        raise_on_failure: bool = True,
    ) -> TaskInfo:
        """Poll until the task ends, for at most ``timeout`` seconds (``None``: no deadline).

        Returns the SUCCESS answer. Raises ``TaskFailed`` or ``TaskCancelled`` when it ended
        otherwise (unless ``raise_on_failure=False``), and ``StillRunning`` (with the taskId)
        when the deadline passed first: the task goes on, and can be waited for again.
        """
        poller = Poller(self._client.poll, wait_timeout(self._client, timeout))
        while not self.info.done:
            try:
                self.info = await self._client._query_once(self.id)
                if on_update is not None:
                    on_update(self.info)
                if self.info.done:
                    break
                delay = poller.after(self.info)
            except ReelgateError as error:
                retry_in = poller.after_error(error)
                if retry_in is None:
                    raise
                logger.info(
                    "query of task %s failed (%s); retrying in %.1f s",
                    self.id,
                    type(error).__name__,
                    retry_in,
                )
                delay = retry_in
            if poller.expired():
                raise StillRunning(self.info, poller.waited)
            await anyio.sleep(delay)
        return self._client._finish(self.info, raise_on_failure)

    async def download(self, directory: str | Path = ".") -> list[Path]:
        """Save the outputs as ``<taskId>_<n>.<ext>`` (see ``Client.download``)."""
        if not self.info.done:
            await self.refresh()
        return await self._client.download(self.info, directory)

    async def cancel(self) -> TaskInfo:
        """Cancel the task and return its status afterwards."""
        await self._client.cancel(self.id)
        return await self.refresh()


class AsyncClient(BaseClient):
    """An async client for RunningHub's Kling O3 API, on RunningHub or on a reelgate server.

    ``base_url`` and ``api_key`` default to ``REELGATE_BASE_URL`` and ``REELGATE_API_KEY``
    (or ``RUNNINGHUB_API_KEY``). Pass ``transport=`` (e.g. ``httpx.ASGITransport(app)``) or a
    ready ``http_client=`` to control the connection.
    """

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
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            base_url,
            api_key,
            timeout=timeout,
            retry=retry,
            poll=poll,
            wait_timeout=wait_timeout,
            idempotency=idempotency,
            upload_cache=upload_cache,
        )
        self._owns_http = http_client is None
        self._upload_locks: dict[str, anyio.Lock] = {}
        self._http = http_client or httpx.AsyncClient(transport=transport, follow_redirects=True)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- sending --------------------------------------------------------------------------

    async def _send(self, request: httpx.Request) -> httpx.Response:
        started = time.monotonic()
        try:
            response = await self._http.send(request)
        except httpx.TransportError as exc:
            raise self._transport_error(exc, request) from exc
        self._log(request, response, started)
        return response

    async def _call(
        self,
        make: Callable[[], httpx.Request],
        parse: Callable[[httpx.Response], T],
        may_retry: Callable[[ReelgateError], bool] | None = None,
    ) -> T:
        retrier = Retrier(self.retry, may_retry or self._may_retry)
        while True:
            request = make()
            try:
                return parse(await self._send(request))
            except ReelgateError as error:
                delay = retrier.next_delay(error)
                if delay is None:
                    raise
                logger.info(
                    "%s %s failed (%s); attempt %d in %.1f s",
                    request.method,
                    request.url.path,
                    type(error).__name__,
                    retrier.attempt + 1,
                    delay,
                )
                await anyio.sleep(delay)

    # -- tasks ----------------------------------------------------------------------------

    async def submit(
        self, request: ModelRequest, *, idempotency_key: str | None = None
    ) -> AsyncTask:
        """Upload the request's local media, submit it, and return the task."""
        return await self._submit(request, None, idempotency_key)

    async def run(
        self,
        model_path: str,
        payload: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        verbatim: bool = False,
    ) -> AsyncTask:
        """Submit a raw body to any model endpoint (``kling-video-o3-pro/image-to-video``, …).

        Known fields are checked as by the typed models; ``Path`` and ``bytes`` values (and
        local paths in ``…Url`` fields) are uploaded first. ``verbatim=True`` sends the body
        exactly as given, unchecked (a gateway forwarding someone else's request).
        """
        return await self._submit(model_path, payload, idempotency_key, verbatim=verbatim)

    async def image_to_video(
        self,
        prompt: str,
        first_image: MediaInput,
        *,
        last_image: MediaInput | None = None,
        duration: int = 5,
        sound: bool = True,
        tier: Tier = "pro",
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> AsyncTask:
        """Kling O3 image-to-video from a first (and optional last) frame: URL, path or bytes."""
        model = KlingO3ProImageToVideo if tier == "pro" else KlingO3StdImageToVideo
        request = parse_request(
            model,
            dict(
                prompt=prompt,
                first_image_url=first_image,
                last_image_url=last_image,
                duration=duration,
                sound=sound,
                **fields,
            ),
        )
        return await self.submit(request, idempotency_key=idempotency_key)

    async def video_edit(
        self,
        prompt: str,
        video: MediaInput,
        *,
        images: list[MediaInput] | None = None,
        keep_sound: bool = True,
        tier: Tier = "pro",
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> AsyncTask:
        """Kling O3 video-edit of an MP4 (URL, path or bytes) with up to 4 reference images."""
        model = KlingO3ProVideoEdit if tier == "pro" else KlingO3StdVideoEdit
        request = parse_request(
            model,
            dict(
                prompt=prompt,
                video_url=video,
                image_urls=images,
                keep_original_sound=keep_sound,
                **fields,
            ),
        )
        return await self.submit(request, idempotency_key=idempotency_key)

    async def _submit(
        self,
        request: ModelRequest | str,
        payload: Mapping[str, Any] | None,
        key: str | None,
        *,
        verbatim: bool = False,
    ) -> AsyncTask:
        path, body, refs = self._plan(request, payload, verbatim=verbatim)
        body = replace_media(
            body, refs, [(await self._upload_local(r.media)).download_url for r in refs]
        )
        key = self._idempotency_key(key)
        info = await self._call(
            lambda: self._submit_request(self._http, path, body, key),
            self._parse_task,
            lambda error: self._may_retry_submit(error, key),
        )
        logger.info("submitted %s as task %s (%s)", path, info.task_id, info.status.value)
        return AsyncTask(self, info)

    def task(self, task_id: str) -> AsyncTask:
        """A handle on an existing task (queried when first waited for)."""
        return AsyncTask(self, TaskInfo(task_id=str(task_id), status=TaskStatus.QUEUED))

    async def query(self, task_id: str) -> TaskInfo:
        """The task's current status and, once done, its results."""
        return await self._call(
            lambda: self._query_request(self._http, task_id), lambda r: self._parse_task(r, task_id)
        )

    async def _query_once(self, task_id: str) -> TaskInfo:
        return self._parse_task(await self._send(self._query_request(self._http, task_id)), task_id)

    async def wait(
        self,
        task_id: str,
        timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
        *,
        on_update: Callable[[TaskInfo], None] | None = None,
        raise_on_failure: bool = True,
    ) -> TaskInfo:
        """``await task(task_id).wait(...)``."""
        return await self.task(task_id).wait(
            timeout, on_update=on_update, raise_on_failure=raise_on_failure
        )

    async def cancel(self, task_id: str) -> None:
        """Ask the server to cancel the task (``/task/openapi/cancel``)."""
        await self._call(
            lambda: self._cancel_request(self._http, task_id),
            lambda r: self._parse_cancel(r, task_id),
        )

    async def download(self, task: TaskInfo | str, directory: str | Path = ".") -> list[Path]:
        """Save a finished task's outputs as ``<directory>/<taskId>_<n>.<ext>``.

        Each file is written under a temporary name, checked against the announced length and
        then renamed, so a file with the final name is always complete. Raises ``StillRunning``,
        ``TaskFailed`` or ``TaskCancelled`` when the task has no outputs to save.
        """
        info = task if isinstance(task, TaskInfo) else await self.query(task)
        folder = Path(directory)
        saved = []
        for name, output in self._downloadable(info):
            if output.url is None:
                with AtomicFile(folder / name) as sink:
                    sink.write((output.text or "").encode())
                    saved.append(sink.commit(None))
                continue
            saved.append(await self._fetch(output.url, folder / name))
        return saved

    async def _fetch(self, url: str, target: Path) -> Path:
        retrier = Retrier(self.retry, self._may_retry)
        while True:
            try:
                return await self._fetch_once(url, target)
            except ReelgateError as error:
                delay = retrier.next_delay(error)
                if delay is None:
                    raise
                await anyio.sleep(delay)

    async def _fetch_once(self, url: str, target: Path) -> Path:
        request = self._download_request(self._http, url)
        try:
            async with self._http.stream(
                request.method, request.url, headers=request.headers, timeout=self.timeout
            ) as response:
                check_download_status(response, target.name)
                with AtomicFile(target) as sink:
                    async for chunk in response.aiter_bytes():
                        sink.write(chunk)
                    return sink.commit(expected_length(response))
        except httpx.TransportError as exc:
            raise self._transport_error(exc, request) from exc

    # -- media and account ----------------------------------------------------------------

    async def upload(self, file: MediaInput) -> UploadedFile:
        """Upload a local file (path) or bytes; the same content is uploaded once a day at most."""
        local = as_local(file, "file")
        if local is None:
            raise RequestValidationError("upload() takes a local file path or bytes, not a URL")
        return await self._upload_local(local)

    async def _upload_local(self, local: LocalMedia) -> UploadedFile:
        sha256 = await anyio.to_thread.run_sync(local.sha256)
        # One upload per content, even when several callers want the same file at once.
        lock = self._upload_locks.setdefault(sha256, anyio.Lock())
        async with lock:
            cached = self.uploads.get(self.base_url, sha256)
            if cached is not None:
                logger.debug("reusing upload of %s (%s)", local.name, sha256[:12])
                return cached
            with local.open() as stream:
                uploaded = await self._call(
                    lambda: self._upload_request(
                        self._http, stream, local.name, local.content_type
                    ),
                    lambda r: self._parse_upload(r, sha256),
                )
            self.uploads.put(self.base_url, uploaded)
        return uploaded

    async def account(self) -> AccountStatus:
        """The key's balance and running tasks (``/uc/openapi/accountStatus``)."""
        return await self._call(lambda: self._account_request(self._http), self._parse_account)

    async def queue_status(self) -> QueueStatus:
        """The key's concurrency limit and queue (``/openapi/v2/queue/status``)."""
        return await self._call(lambda: self._queue_request(self._http), self._parse_queue)

    # -- webhooks -------------------------------------------------------------------------

    async def webhook_detail(self, task_id: str) -> WebhookDetail:
        """A task's webhook event and how its delivery went (``getWebhookDetail``)."""
        return await self._call(
            lambda: self._webhook_detail_request(self._http, task_id), self._parse_webhook_detail
        )

    async def retry_webhook(self, webhook_id: str, url: str | None = None) -> None:
        """Deliver a webhook event again, to ``url`` from now on when given (``retryWebhook``)."""
        await self._call(
            lambda: self._retry_webhook_request(self._http, webhook_id, url), self._parse_done
        )

    async def webhook_secret(self) -> str:
        """The key's webhook signing secret (``whsec_…``), for ``verify_webhook``."""
        return await self._call(
            lambda: self._webhook_secret_request(self._http), self._parse_webhook_secret
        )

    async def price(
        self,
        request: ModelRequest | str,
        payload: Mapping[str, Any] | None = None,
        *,
        verbatim: bool = False,
    ) -> PricePreview:
        """What a request would cost, without running it (local media is uploaded first).

        ``verbatim=True`` asks about the body exactly as given, as ``run()`` does.
        """
        path, body, refs = self._plan(request, payload, verbatim=verbatim)
        body = replace_media(
            body, refs, [(await self._upload_local(r.media)).download_url for r in refs]
        )
        return await self._call(
            lambda: self._price_request(self._http, path, body), self._parse_price
        )
