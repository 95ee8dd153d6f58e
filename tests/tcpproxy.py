"""A loopback TCP proxy that a test can cut and restore, to take a service away from the
processes that use it without touching the service itself (the shared PostgreSQL above all)."""

from __future__ import annotations

import socket
import struct
import threading
from contextlib import suppress

from tests.conftest import free_port


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:target_port`` until ``cut()``.

    ``cut()`` is the far side vanishing: every open connection is reset on both sides (so the
    service drops what those clients held, as a server does when their socket dies), and new
    connections are accepted but never answered, as a host that stopped answering leaves a
    client waiting; only the client's own timeouts end that wait. ``restore()`` forwards new
    connections again and closes the ones held meanwhile.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        #: Connections accepted while cut (each one a client left waiting).
        self.held_total = 0
        self._cut = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._held: list[socket.socket] = []
        self._closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", self.port), backlog=128)
        self._listener.settimeout(0.2)
        threading.Thread(target=self._accept, name="tcpproxy", daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            self._cut.set()
            doomed, self._open = self._open, set()
        for sock in doomed:
            _reset(sock)

    def restore(self) -> None:
        with self._lock:
            self._cut.clear()
            held, self._held = self._held, []
        for sock in held:
            _reset(sock)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        self.cut()
        self.restore()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                if self._cut.is_set():
                    self._held.append(client)
                    self.held_total += 1
                    continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            upstream.settimeout(None)
        except OSError:
            _reset(client)
            return
        with self._lock:
            if self._cut.is_set():  # cut while connecting
                self._held.append(client)
                _reset(upstream)
                return
            self._open.update((client, upstream))
        threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
        _pump(upstream, client)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        _reset(sink)
        _reset(source)


#: SO_LINGER on, for 0 s: closing sends a reset, as a connection that died rather than ended.
_ABORT = struct.pack("ii", 1, 0)


def _reset(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _ABORT)
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked reading it
    with suppress(OSError):
        sock.close()
