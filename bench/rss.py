"""Peak resident memory of a process tree (a server and the workers it spawns), on a thread."""

from __future__ import annotations

import threading
from types import TracebackType

import psutil


class RssSampler:
    """Samples a process's RSS (its children's included) on a thread; `peak` is the maximum."""

    def __init__(self, pid: int, interval_seconds: float = 0.05) -> None:
        self.process = psutil.Process(pid)
        self.interval_seconds = interval_seconds
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def sample(self) -> None:
        try:
            rss = int(self.process.memory_info().rss)
            for child in self.process.children(recursive=True):
                rss += int(child.memory_info().rss)
        except psutil.Error:
            return
        self.peak = max(self.peak, rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            self.sample()
