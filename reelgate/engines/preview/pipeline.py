"""Run a render's frame work on one thread and its encoding on another, frame by frame.

The producer (an iterator: decode, warp, grade, …) runs on a helper thread; OpenCV and NumPy
release the GIL, so it overlaps with x264, which the calling thread feeds. A small bounded
queue between them keeps memory flat whatever the duration. Progress and cancellation stay on
the calling thread, so a render stops within a frame or two of a cancel.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from reelgate.engines.base import RenderContext

T = TypeVar("T")

#: Items produced ahead of the encoder. Two or three keep both cores busy; more only use memory.
QUEUE_DEPTH = 3


class _Done:
    pass


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Producer(Generic[T]):
    def __init__(self, items: Iterator[T]) -> None:
        self._items = items
        self._queue: queue.Queue[T | _Done | _Failed] = queue.Queue(maxsize=QUEUE_DEPTH)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="preview-frames", daemon=True)

    def _put(self, item: T | _Done | _Failed) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
            self._put(_Done())
        except BaseException as error:  # handed to the consumer, which re-raises it
            self._put(_Failed(error))
        finally:
            # A generator stopped early still holds its resources (open files) until closed.
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> _Producer[T]:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if isinstance(item, _Done):
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item


def run(
    items: Iterator[T],
    consume: Callable[[T], None],
    ctx: RenderContext,
    total: int,
    *,
    counts: Callable[[T], bool] = lambda item: True,
) -> None:
    """Feed every item to ``consume``, reporting progress per counted item out of ``total``.

    Checks for cancellation before each item. Progress reaches 1.0 only when the caller says
    so (after the file is finished), so it stays below 1 here.
    """
    done = 0
    with _Producer(items) as produced:
        for item in produced:
            ctx.raise_if_cancelled()
            consume(item)
            if counts(item):
                done += 1
                ctx.report_progress(min(done / total, 1.0) * 0.99)
