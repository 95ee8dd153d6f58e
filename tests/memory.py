"""The peak resident memory of this process over a block of code.

On Linux the kernel keeps the peak itself (``VmHWM`` in ``/proc/self/status``) and lets a
process reset it (``5`` written to ``/proc/self/clear_refs``), which catches a spike of any
length. Where that is not possible, a thread samples the resident size every millisecond with
psutil, which catches anything that lasts longer than a sample (a decode of hundreds of
megabytes takes far longer). Both run when both can; the higher figure counts.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType

import psutil

MB = 1024 * 1024
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _kernel_peak() -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_kernel_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


class PeakRss:
    """``with PeakRss() as peak: ...``, then ``peak.growth``: the most the resident size rose
    above what it was at the start, in bytes."""

    def __init__(self, interval: float = 0.001) -> None:
        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self._sampled = 0
        self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)
        self.baseline = 0
        self.peak = 0
        #: Whether the kernel's own peak was used (else only sampling).
        self.exact = False

    @property
    def growth(self) -> int:
        return max(0, self.peak - self.baseline)

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self._sampled = max(self._sampled, self._process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self.baseline = self._process.memory_info().rss
        self._sampled = self.baseline
        self.exact = _reset_kernel_peak() and _kernel_peak() is not None
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        kernel = _kernel_peak() if self.exact else None
        self.peak = max(self._sampled, kernel or 0, self._process.memory_info().rss)

    def __str__(self) -> str:
        how = "kernel peak" if self.exact else "sampled"
        return f"{self.growth / MB:.1f} MB above {self.baseline / MB:.1f} MB ({how})"
