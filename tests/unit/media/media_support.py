"""Helpers for the media tests: generated images and videos, a real local HTTP server, a
loopback-only HTTP client and fake DNS answers for ``*.test`` names.

Only 127.0.0.1 is ever contacted: every HTTP client handed to the code under test goes through
``LoopbackOnlyTransport``, which fails the test if a request would leave the machine.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import av
import httpx
import numpy as np
import pytest
from PIL import Image

# --- generated media ----------------------------------------------------------------------------


def image_bytes(
    width: int, height: int, fmt: str = "PNG", *, noise: bool = False, **save: object
) -> bytes:
    """An image; ``noise`` makes it incompressible, so that a truncated copy cuts pixel data."""
    rng = np.random.default_rng(width * 7919 + height)
    if noise:
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    else:
        pixels = np.zeros((height, width, 3), dtype=np.uint8)
        pixels[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)
        pixels[..., 1] = 128
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, fmt, **save)
    return buf.getvalue()


def video_bytes(
    tmp_dir: Path,
    *,
    seconds: float = 3.0,
    width: int = 64,
    height: int = 48,
    fps: int = 10,
    audio: bool = False,
    container: str = "mp4",
    video: bool = True,
    fragmented: bool = False,
    rotation: int = 0,
) -> bytes:
    """A small H.264 clip (plus AAC when ``audio``) in ``container`` (mp4, mov or matroska)."""
    name = f"{seconds}-{width}x{height}-{fps}-{audio}-{video}-{fragmented}-{rotation}"
    path = tmp_dir / f"clip-{name}.{container}"
    options = {"movflags": "frag_keyframe+empty_moov"} if fragmented else {}
    with av.open(str(path), "w", format=container, options=options) as out:
        # Every stream must exist before the first packet is muxed (that writes the header).
        vstream = out.add_stream("libx264", rate=fps) if video else None
        astream = out.add_stream("aac", rate=16000, layout="mono") if audio else None
        if vstream is not None:
            vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
            if rotation:
                vstream.set_display_rotation(rotation)
            for i in range(round(seconds * fps)):
                frame = np.full((height, width, 3), (i * 8) % 256, dtype=np.uint8)
                out.mux(vstream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            out.mux(vstream.encode())
        if astream is not None:
            rate, samples = 16000, 1024
            for i in range(int(seconds * rate) // samples):
                tone = np.sin(np.arange(samples) / 8.0).astype(np.float32)[None, :] * 0.1
                aframe = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
                aframe.sample_rate = rate
                aframe.pts = i * samples
                aframe.time_base = Fraction(1, rate)
                out.mux(astream.encode(aframe))
            out.mux(astream.encode())
    return path.read_bytes()


# --- a loopback-only HTTP client ----------------------------------------------------------------


class LeftLoopback(BaseException):
    """A request was about to go somewhere other than 127.0.0.1.

    A ``BaseException`` so that no ``except Exception`` in the code under test can hide it.
    """


class LoopbackOnlyTransport(httpx.HTTPTransport):
    """Forwards requests for 127.0.0.1 only; ``unreachable`` hosts fail as if the network
    had no route to them, without anything being sent."""

    def __init__(
        self,
        *,
        allow: bool = True,
        unreachable: frozenset[str] = frozenset(),
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        super().__init__(trust_env=False, verify=verify)
        self.allow = allow
        self.unreachable = unreachable
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.allow and request.url.host in self.unreachable:
            raise httpx.ConnectError("[Errno 101] Network is unreachable", request=request)
        if not self.allow or request.url.host != "127.0.0.1":
            raise LeftLoopback(f"the code under test tried to reach {request.url}")
        return super().handle_request(request)


# --- fake DNS for names under .test -------------------------------------------------------------


@dataclass
class FakeDns:
    """Answers for host names ending in ``.test``; everything else goes to the real resolver."""

    names: dict[str, list[str]] = field(default_factory=dict)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real = socket.getaddrinfo

        def getaddrinfo(host: object, port: object, *args: object, **kwargs: object) -> object:
            if isinstance(host, str) and host.endswith(".test"):
                if host not in self.names:
                    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
                return [
                    (
                        socket.AF_INET6 if ":" in ip else socket.AF_INET,
                        socket.SOCK_STREAM,
                        6,
                        "",
                        (ip, port, 0, 0) if ":" in ip else (ip, port),
                    )
                    for ip in self.names[host]
                ]
            return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


# --- the local HTTP server ----------------------------------------------------------------------


@dataclass
class Served:
    body: bytes
    content_type: str = "application/octet-stream"


class MediaServer:
    """Routes:

    - ``/f/<name>``: a registered file (``add``), with whatever Content-Type it was given
      (and a session cookie when the query string has ``cookie``);
    - ``/redirect/<n>/<name>``: ``n`` redirects, then ``/f/<name>``;
    - ``/to?url=<location>``: one redirect to any location;
    - ``/status/<code>``: an empty response with that status;
    - ``/huge``: announces a terabyte in Content-Length;
    - ``/unsized/<n>``: ``n`` bytes without Content-Length, so only a running count can stop it;
    - ``/slow``: answers after 5 s; ``/trickle``: sends one byte every 0.1 s;
    - ``/forever``: headers, then a byte every 50 ms for as long as anyone listens;
    - ``/trickle-headers``: a header line that never ends, a byte every 50 ms;
    - ``/lie/short/<name>``: a file with a Content-Length twice its size (the connection then
      closes); ``/lie/long/<name>``: with a Content-Length half its size (the rest follows).
    """

    def __init__(self) -> None:
        self.files: dict[str, Served] = {}
        self.hosts: list[tuple[str, str]] = []  # (path, Host header) of every request
        self.cookies: list[str] = []  # Cookie header of every request that sent one
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.hosts.append((self.path, self.headers.get("Host", "")))
                if "Cookie" in self.headers:
                    server.cookies.append(self.headers["Cookie"])
                server.route(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, name: str, body: bytes, content_type: str = "application/octet-stream") -> str:
        self.files[name] = Served(body, content_type)
        return f"{self.base}/f/{name}"

    def route(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        parts = url.path.strip("/").split("/")
        try:
            if parts[0] == "f" and parts[1] in self.files:
                served = self.files[parts[1]]
                cookie = {"Set-Cookie": "session=secret; Path=/"} if "cookie" in url.query else {}
                self._send(h, 200, served.body, served.content_type, headers=cookie)
            elif parts[0] == "redirect":
                left = int(parts[1])
                target = f"/redirect/{left - 1}/{parts[2]}" if left > 1 else f"/f/{parts[2]}"
                self._send(h, 302, b"", headers={"Location": target})
            elif parts[0] == "to":
                location = parse_qs(url.query)["url"][0]
                self._send(h, 302, b"", headers={"Location": location})
            elif parts[0] == "status":
                self._send(h, int(parts[1]), b"")
            elif parts[0] == "huge":
                h.send_response(200)
                h.send_header("Content-Length", str(10**12))
                h.end_headers()
                h.wfile.write(b"\0" * 1024)
            elif parts[0] == "unsized":
                h.send_response(200)
                h.send_header("Connection", "close")
                h.end_headers()
                chunk = b"\x89PNG\r\n\x1a\n" + b"\0" * (64 * 1024 - 8)
                for _ in range(int(parts[1]) // len(chunk) + 1):
                    h.wfile.write(chunk)
                h.close_connection = True
            elif parts[0] == "slow":
                self.stopping.wait(5)
                self._send(h, 200, b"late")
            elif parts[0] == "trickle":
                h.send_response(200)
                h.send_header("Content-Length", "1000")
                h.end_headers()
                for _ in range(1000):
                    if self.stopping.wait(0.1):
                        break
                    h.wfile.write(b"x")
                    h.wfile.flush()
            elif parts[0] == "forever":
                h.send_response(200)
                h.send_header("Content-Type", "image/png")
                h.end_headers()
                self._drip(h, b"\x89PNG\r\n\x1a\n", b"\0")
            elif parts[0] == "trickle-headers":
                h.wfile.write(b"HTTP/1.1 200 OK\r\nX-Padding: ")
                self._drip(h, b"", b"a")
            elif parts[0] == "lie" and parts[2] in self.files:
                body = self.files[parts[2]].body
                declared = len(body) * 2 if parts[1] == "short" else len(body) // 2
                h.send_response(200)
                h.send_header("Content-Length", str(declared))
                h.send_header("Connection", "close")
                h.end_headers()
                h.wfile.write(body)
                h.close_connection = True
            else:
                self._send(h, 404, b"not found")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first, which is what several tests want

    def _drip(self, h: BaseHTTPRequestHandler, first: bytes, then: bytes) -> None:
        """Send ``first`` and then ``then`` over and over, a byte every 50 ms, until the client
        hangs up or the server stops."""
        for byte in itertools.chain(first, itertools.cycle(then)):
            if self.stopping.wait(0.05):
                return
            h.wfile.write(bytes([byte]))
            h.wfile.flush()

    @staticmethod
    def _send(
        h: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        content_type: str = "application/octet-stream",
        headers: dict[str, str] | None = None,
    ) -> None:
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(body)


# --- HTTPS --------------------------------------------------------------------------------------


def self_signed_certificate(tmp_dir: Path, name: str) -> tuple[Path, Path]:
    """A certificate for ``name`` and its key, made with the openssl command."""
    cert, key = tmp_dir / f"{name}.crt", tmp_dir / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={name}",
            "-addext",
            f"subjectAltName=DNS:{name}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class TlsServer:
    """One PNG over HTTPS on 127.0.0.1, recording the TLS server name each client asked for."""

    def __init__(self, cert: Path, key: Path, body: bytes) -> None:
        self.server_names: list[str | None] = []
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        context.sni_callback = lambda sock, name, ctx: self.server_names.append(name)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def handle(self) -> None:
                # A client that refuses our certificate hangs up mid-handshake.
                with contextlib.suppress(ssl.SSLError, ConnectionResetError):
                    super().handle()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
