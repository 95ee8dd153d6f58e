"""HTTP/1.1 over a raw socket, for what well-behaved clients never send: bodies longer than they
declare, bodies sent while the answer is read, several requests on one kept-alive connection."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

MB = 1024 * 1024


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Sender:
    """Writes a body in a thread while the answer is read; ``sent`` counts what got out."""

    sent: int = 0
    error: BaseException | None = None
    thread: threading.Thread | None = field(default=None, repr=False)

    def join(self, timeout: float = 60) -> None:
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the body is still being written"


class Connection:
    """One connection to 127.0.0.1:``port``; requests are written exactly as given."""

    def __init__(self, port: int, timeout: float = 30) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._buffer = b""

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send_head(self, method: str, path: str, headers: dict[str, str]) -> None:
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> Answer:
        self.send_head(method, path, {"Content-Length": str(len(body)), **(headers or {})})
        self.sock.sendall(body)
        return self.read_answer(head_only=method == "HEAD")

    def send_in_background(self, chunks: Iterable[bytes]) -> Sender:
        """Write ``chunks`` from a thread until they end or the server stops the connection."""
        sender = Sender()

        def run() -> None:
            try:
                for chunk in chunks:
                    self.sock.sendall(chunk)
                    sender.sent += len(chunk)
            except OSError as error:  # reset, broken pipe, or shut down by ``stop_sending``
                sender.error = error

        sender.thread = threading.Thread(target=run, daemon=True)
        sender.thread.start()
        return sender

    def stop_sending(self) -> None:
        """Stop a background body (and the connection: call it once the answer was read)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self._buffer += data
        return bool(data)

    def read_answer(self, *, head_only: bool = False) -> Answer:
        while b"\r\n\r\n" not in self._buffer:
            if not self._fill():
                raise ConnectionError(f"closed before an answer: {self._buffer[:200]!r}")
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head_only else int(headers.get("content-length", "0"))
        while len(self._buffer) < length:
            if not self._fill():
                raise ConnectionError("closed inside the answer's body")
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return Answer(int(status_line.split()[1]), headers, body)

    def closed_by_server(self) -> bool:
        """Whether the server closes the connection (reads until it does, or times out)."""
        try:
            while self._fill():
                pass
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        return True


def chunked(chunks: Iterable[bytes], *, end: bool = True) -> Iterator[bytes]:
    """``Transfer-Encoding: chunked`` framing of ``chunks``."""
    for chunk in chunks:
        yield b"%x\r\n%s\r\n" % (len(chunk), chunk)
    if end:
        yield b"0\r\n\r\n"


def filler(total: int, size: int = MB, byte: bytes = b"a") -> Iterator[bytes]:
    """``total`` bytes in chunks of ``size``."""
    while total > 0:
        yield byte * min(size, total)
        total -= size


def boundary() -> str:
    return uuid.uuid4().hex


def form_part(bound: str, name: str, value: bytes = b"", filename: str | None = None) -> bytes:
    """One part of a ``multipart/form-data`` body, opening boundary and headers included; for a
    file part, ``value`` may be left empty and its bytes sent after it."""
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    head = f"--{bound}\r\nContent-Disposition: {disposition}\r\n"
    if filename:
        head += "Content-Type: application/octet-stream\r\n"
    return (head + "\r\n").encode() + value


def form_end(bound: str) -> bytes:
    return f"\r\n--{bound}--\r\n".encode()


def form(bound: str, fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> bytes:
    """A complete form: ``fields`` first, then ``files`` (name → (file name, bytes))."""
    parts = [form_part(bound, name, value.encode()) for name, value in fields.items()]
    parts += [form_part(bound, name, data, filename) for name, (filename, data) in files.items()]
    return b"\r\n".join(parts) + form_end(bound)
