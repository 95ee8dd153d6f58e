"""Idle workers woken when a task becomes claimable, instead of finding it at their next poll.

A transaction that makes a task claimable (a submit; a task leaving RUNNING, which frees a slot
of its key's concurrency or puts it back in the queue) calls ``announce``. Waking happens only
once it commits, so a woken worker's claim always sees the task:

* PostgreSQL: ``NOTIFY reelgate_queue`` in the transaction itself, which the server delivers on
  commit to every session that ran ``LISTEN reelgate_queue``. Each worker holds such a session
  on a connection of its own (``PostgresListener``), reconnecting with backoff when it drops.
* SQLite: the database lives on this host, and so do its workers. ``announce`` marks the
  session; after the commit, ``Database`` sends one byte to each worker's datagram socket
  (``LocalSignal``). The sockets are Linux abstract UNIX sockets named after the database
  file: nothing on disk to clean up after a crash, no length limit from the data dir's path,
  and a sender finds the workers by trying the slot names in order, a few syscalls a commit.
  A named pipe would wake only one reader per byte, and that worker may be busy.

Waking is only ever early: a worker still polls (``worker.poll_seconds``, with jitter), so a
lost signal, a platform without abstract sockets or a listener reconnecting costs latency,
never a task.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import random
import socket
import threading
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

log = logging.getLogger("reelgate.wakeup")

CHANNEL = "reelgate_queue"
#: ``Session.info`` key: this SQLite transaction announced a claimable task.
ANNOUNCED = "reelgate_announced"
#: Slots a worker's socket may take on one host and database; a sender stops after ``GAP``
#: empty ones in a row (workers take the lowest free slot, so the taken ones are dense).
MAX_SLOTS = 1024
GAP = 8
#: The first and the longest pause before a dropped listener connects again.
FIRST_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 5.0
#: How often a listener looks whether it was closed while no notification comes.
LISTEN_TICK_SECONDS = 1.0


class Listener(Protocol):
    def close(self) -> None: ...


def announce(session: Session) -> None:
    """Wake idle workers once this transaction commits: it made a task claimable."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {CHANNEL}"))
    else:
        session.info[ANNOUNCED] = True


def sqlite_path(url: str) -> str | None:
    """The database file of a SQLite URL, resolved (None: in memory, or not SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return os.path.realpath(str(parsed.database))


class LocalSignal:
    """The datagram sockets of one SQLite database's workers on this host: ``send`` wakes all of
    them, ``listen`` makes one and wakes ``wake`` whenever a byte arrives."""

    def __init__(self, database_path: str) -> None:
        digest = hashlib.sha256(database_path.encode()).hexdigest()[:24]
        self._prefix = f"\0reelgate-queue-{digest}-"
        self._sender: socket.socket | None = None
        self._lock = threading.Lock()

    def _name(self, slot: int) -> str:
        return f"{self._prefix}{slot}"

    def send(self) -> None:
        """One byte to every listening worker; never blocks, never raises."""
        try:
            with self._lock:
                if self._sender is None:
                    self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    self._sender.setblocking(False)
                sender = self._sender
        except OSError:
            return
        empty = 0
        for slot in range(MAX_SLOTS):
            try:
                sender.sendto(b"\1", self._name(slot))
                empty = 0
            except BlockingIOError:  # its queue is full: it has been woken already
                empty = 0
            except OSError:  # no socket in this slot (or no abstract sockets here)
                empty += 1
                if empty >= GAP:
                    return

    def listen(self, wake: threading.Event) -> LocalListener | None:
        """A listening socket in the lowest free slot; None where there can be none."""
        for slot in range(MAX_SLOTS):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.bind(self._name(slot))
            except OSError as error:
                sock.close()
                if error.errno == errno.EADDRINUSE:  # another worker's
                    continue
                log.info("no local wake-ups (%s): idle workers poll", error)
                return None
            return LocalListener(sock, self._name(slot), wake)
        return None

    def close(self) -> None:
        with self._lock:
            if self._sender is not None:
                self._sender.close()
                self._sender = None


class LocalListener:
    """A worker's socket, read by a thread that sets ``wake`` on every byte."""

    def __init__(self, sock: socket.socket, name: str, wake: threading.Event) -> None:
        self._sock = sock
        self._name = name
        self._wake = wake
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="wakeup", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            try:
                self._sock.recv(64)
            except OSError:
                return
            if not self._closed:
                self._wake.set()

    def close(self) -> None:
        self._closed = True
        # A byte to itself ends the read the thread is blocked in.
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"\0", self._name)
        self._thread.join(5)
        self._sock.close()


class PostgresListener:
    """A thread holding a connection of its own that ``LISTEN``s on the queue's channel and sets
    ``wake`` on every notification, reconnecting with backoff when the connection drops.

    Each (re)connection sets ``wake`` too: what was announced while no one listened is found by
    the claim it leads to.
    """

    def __init__(self, url: str, wake: threading.Event) -> None:
        self._conninfo = make_url(url).set(drivername="postgresql").render_as_string(False)
        self._wake = wake
        self._closed = threading.Event()
        #: Set while connected and listening (for tests and logs).
        self.listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="listen", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        backoff = FIRST_BACKOFF_SECONDS
        while not self._closed.is_set():
            try:
                self._listen()
                backoff = FIRST_BACKOFF_SECONDS
            except Exception as error:  # the database went away, or refused us: try again
                self.listening.clear()
                if self._closed.is_set():
                    return
                log.warning("queue listener lost its connection (%s); reconnecting", error)
                self._closed.wait(backoff * random.uniform(0.5, 1.0))
                backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)

    def _listen(self) -> None:
        import psycopg

        connection: Any = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10)
        with connection:
            connection.execute(f"LISTEN {CHANNEL}")
            self.listening.set()
            self._wake.set()
            while not self._closed.is_set():
                for _ in connection.notifies(timeout=LISTEN_TICK_SECONDS):
                    self._wake.set()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(LISTEN_TICK_SECONDS + 10)
