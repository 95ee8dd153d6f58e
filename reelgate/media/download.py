"""Getting a media URL's bytes onto local disk: ``http(s)://`` downloads and ``data:`` URIs.

Both write to a file and stop at the size cap, so a hostile or mistaken URL costs at most
``max_input_bytes`` of disk and never that much memory (a ``data:`` URI is already in memory as
part of the request). Errors are ``InvalidUrl`` (the URL could not be fetched) or
``FileTooLarge``; their details do not name the field, the caller adds it.
"""

from __future__ import annotations

import binascii
import contextlib
import socket
import threading
import time
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from reelgate import __version__
from reelgate.config import MediaSettings
from reelgate.core.errors import FileTooLarge, InvalidUrl
from reelgate.media.netguard import NetworkPolicy, resolve_host

_URL_SHOWN_MAX = 200


def display_url(url: httpx.URL | str) -> str:
    """A URL as error messages show it: without query string (signed links carry secrets there)
    and cut to a readable length."""
    if isinstance(url, str):
        text = url
        try:
            url = httpx.URL(text)
        except httpx.InvalidURL:
            return _cut(text)
        if not url.raw_host:
            return _cut(text.partition("?")[0])
    shown = str(url.copy_with(query=None, fragment=None))
    if url.query:
        shown += "?…"
    return _cut(shown)


def _cut(text: str) -> str:
    return text if len(text) <= _URL_SHOWN_MAX else text[:_URL_SHOWN_MAX] + "…"


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def too_large(size: int | None, cap: int) -> FileTooLarge:
    what = f"file is {_mb(size)}" if size is not None else "file is larger than the limit"
    return FileTooLarge(f"{what}; at most {_mb(cap)} ({cap} bytes) are accepted")


# --- data: URIs ---------------------------------------------------------------------------------


def is_data_uri(url: str) -> bool:
    return url[:5].lower() == "data:"


def write_data_uri(uri: str, dest: Path, cap: int) -> int:
    """Decode a ``data:<mime>;base64,<payload>`` URI into ``dest``; returns the size in bytes.

    The declared MIME type is ignored: like every other source, the bytes are sniffed later.
    """
    header, sep, payload = uri[5:].partition(",")
    if not sep:
        raise InvalidUrl("data: URI has no ',' before its payload")
    if not header.lower().endswith(";base64"):
        raise InvalidUrl("only base64 data: URIs are accepted (data:<mime>;base64,<payload>)")
    # Check the encoded length first, so an oversized payload is never decoded: 4 characters
    # carry 3 bytes.
    if len(payload) > 4 * -(-cap // 3):
        raise too_large(len(payload) // 4 * 3, cap)
    try:
        data = binascii.a2b_base64(payload, strict_mode=True)
    except binascii.Error as exc:
        raise InvalidUrl(f"data: URI payload is not valid base64 ({exc})") from exc
    if len(data) > cap:
        raise too_large(len(data), cap)
    dest.write_bytes(data)
    return len(data)


# --- http(s) ------------------------------------------------------------------------------------


class HttpDownloader:
    """Downloads one URL at a time with the network guard applied to every hop.

    Redirects are followed here, not by httpx, so that each ``Location`` is checked like the
    first URL. Each request goes to an address that ``resolve_host`` approved: the URL's host
    is replaced by that IP literal, while the ``Host`` header and the TLS server name
    (httpcore's ``sni_hostname`` extension, which also drives certificate verification) keep the
    real name. httpx therefore never resolves the name a second time, which is what defeats DNS
    rebinding (a first answer that is public, a second that is private).
    """

    def __init__(
        self,
        settings: MediaSettings,
        policy: NetworkPolicy,
        *,
        client: httpx.Client | None = None,
    ) -> None:
        self._settings = settings
        self._policy = policy
        self._owns_client = client is None
        # trust_env=False: an HTTP(S)_PROXY from the environment would receive the pinned
        # IP-literal URLs and make its own, unchecked, connection. The cookie jar refuses
        # every cookie: with IP-literal URLs, a cookie set by one caller's host would be sent
        # to another caller's host on the same (e.g. CDN) address.
        self._client = client or httpx.Client(
            trust_env=False,
            follow_redirects=False,
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        )

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def download(self, url: str, dest: Path) -> int:
        """Stream ``url`` into ``dest``; returns the number of bytes written. The whole of it,
        redirects included, ends by ``fetch_timeout_seconds``."""
        timeout = self._settings.fetch_timeout_seconds
        deadline = time.monotonic() + timeout
        with _Watchdog(deadline) as watchdog:
            return self._download(url, dest, deadline, watchdog)

    def _download(self, url: str, dest: Path, deadline: float, watchdog: _Watchdog) -> int:
        timeout = self._settings.fetch_timeout_seconds
        current = _parse_http_url(url)
        for _hop in range(self._settings.max_redirects + 1):
            try:
                response = self._send(current, deadline, watchdog)
            except httpx.TimeoutException as exc:
                raise _timed_out(current, timeout) from exc
            except InvalidUrl as exc:
                if watchdog.fired:
                    raise _timed_out(current, timeout) from exc
                raise
            try:
                if response.is_redirect:
                    try:
                        target = current.join(response.headers["Location"])
                    except httpx.InvalidURL as exc:
                        raise InvalidUrl(
                            f"{display_url(current)} redirects to an invalid URL ({exc})"
                        ) from exc
                    current = _parse_http_url(target, redirected=True)
                    continue
                if response.status_code >= 400:
                    raise InvalidUrl(f"HTTP {response.status_code} from {display_url(current)}")
                if not response.is_success:
                    raise InvalidUrl(
                        f"unexpected HTTP {response.status_code} from {display_url(current)}"
                    )
                return self._save(response, current, dest, deadline, watchdog)
            finally:
                response.close()
        raise InvalidUrl(
            f"too many redirects (more than {self._settings.max_redirects}) starting at "
            f"{display_url(url)}"
        )

    def _send(self, url: httpx.URL, deadline: float, watchdog: _Watchdog) -> httpx.Response:
        host = url.raw_host.decode("ascii")
        port = url.port or (443 if url.scheme == "https" else 80)
        resolved = resolve_host(host, port, self._policy)
        failure: Exception | None = None
        # Try each checked address in turn, as a browser would on a dual-stack host.
        for ip in resolved.addresses:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise httpx.ConnectTimeout("deadline passed")
            # A bare Request, not client.build_request: nothing from the client's cookie jar or
            # default headers is added to a request for a caller-chosen host.
            request = httpx.Request(
                "GET",
                url.copy_with(host=str(ip)),
                headers={
                    "Host": url.netloc.decode("ascii"),
                    "User-Agent": f"reelgate/{__version__}",
                    # Compressed transfer would let a small body expand past the cap in one
                    # chunk; media files gain nothing from it anyway.
                    "Accept-Encoding": "identity",
                    # The pool keys connections by origin, which is now the IP: a kept-alive
                    # TLS connection verified for one name would be reused for another name
                    # on the same address. One connection per request keeps them apart.
                    "Connection": "close",
                },
                extensions={
                    "sni_hostname": host,
                    "timeout": httpx.Timeout(remaining).as_dict(),
                    "trace": watchdog.trace,
                },
            )
            try:
                return self._client.send(request, stream=True, follow_redirects=False)
            except httpx.ConnectError as exc:
                failure = exc
            except httpx.TimeoutException:
                raise
            except httpx.RequestError as exc:
                raise InvalidUrl(f"request to {display_url(url)} failed ({exc})") from exc
        raise InvalidUrl(f"could not connect to {host} port {port} ({failure})")

    def _save(
        self,
        response: httpx.Response,
        url: httpx.URL,
        dest: Path,
        deadline: float,
        watchdog: _Watchdog,
    ) -> int:
        cap = self._settings.max_input_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            raise too_large(int(declared), cap)
        written = 0
        try:
            with dest.open("wb") as out:
                # No chunk_size: httpx would buffer up to it, and both the cap and the deadline
                # must be checked as bytes arrive.
                for chunk in response.iter_bytes():
                    written += len(chunk)
                    if written > cap:
                        raise too_large(None, cap)
                    out.write(chunk)
                    # Per-read timeouts alone would let a server trickle a byte at a time
                    # forever; the deadline bounds the whole transfer.
                    if time.monotonic() > deadline:
                        raise httpx.ReadTimeout("deadline passed")
            if watchdog.fired:
                # A body without a length ends when the connection does: the watchdog's
                # shutdown reads as its end.
                raise httpx.ReadTimeout("deadline passed")
        except httpx.TimeoutException as exc:
            raise _timed_out(url, self._settings.fetch_timeout_seconds) from exc
        except httpx.RequestError as exc:
            if watchdog.fired:
                raise _timed_out(url, self._settings.fetch_timeout_seconds) from exc
            raise InvalidUrl(f"download from {display_url(url)} broke off ({exc})") from exc
        return written


class _Watchdog:
    """Ends a download's connections when its deadline passes, whatever they are waiting for.

    httpx's timeouts apply to each socket operation, so a server that keeps sending a byte
    now and then (in its headers, where no check of ours runs, or in its body) would hold a
    worker for as long as it likes. The watchdog learns each connection's socket from httpcore's
    ``trace`` extension and shuts it down at the deadline: the blocked read returns at once and
    the download fails as timed out. (During a TLS handshake the socket is between owners; a
    handshake is still bounded by the connect timeout, and the socket is shut down as soon as
    the handshake returns it.)
    """

    def __init__(self, deadline: float) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.fired = False
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sockets.append(sock)
            fired = self.fired
        if fired:
            _shut(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._timer.cancel()
        with self._lock:
            self._sockets.clear()


def _shut(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for a TLS socket: SSLSocket.shutdown would tear down
    # its TLS state under the thread that is reading from it.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _timed_out(url: httpx.URL | str, timeout: float) -> InvalidUrl:
    return InvalidUrl(f"fetching {display_url(url)} timed out after {timeout:g} s")


def _parse_http_url(url: str | httpx.URL, *, redirected: bool = False) -> httpx.URL:
    # Messages show what the caller wrote; httpx's normalised form can read oddly ("http:").
    shown = display_url(url)
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InvalidUrl(f"{shown} is not a valid URL ({exc})") from exc
    if parsed.scheme not in ("http", "https"):
        what = "redirect target" if redirected else "URL"
        raise InvalidUrl(f"{what} {shown} must use http or https")
    if not parsed.raw_host:
        raise InvalidUrl(f"URL {shown} has no host")
    return parsed
