"""Admission by memory: one gate for every render in the process, a fair queue in front of it.

A render starts when its predicted peak fits what is free: the render budget as if no
render were running, less the peaks reserved by the renders that are. Requests wait
in arrival order (the head is served first, so a large request is not starved by small
ones behind it) and give up after `max_wait_s` with a sentence. When nothing runs, the
head always starts: the watchdog and the fallback chain protect a request whose
prediction is larger than the machine.

Per visitor: one generation at a time, and at most `per_window` in `window_s`.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psutil

from engine.errors import Busy
from engine.memory.plan import attempt_budget_mb
from engine.memory.reading import MB, read_memory
from engine.settings import Settings

# Peak memory by method and tier when history has no figure yet (the 1080p/720p/480p
# column of the README's benchmark, rounded up).
DEFAULT_NEED_MB = {
    ("moviepy", "high"): 300, ("moviepy", "medium"): 180, ("moviepy", "low"): 130,
    ("ffmpeg", "high"): 130, ("ffmpeg", "medium"): 80, ("ffmpeg", "low"): 55, ("emergency", "emergency"): 55,
}  # fmt: skip


@dataclass(frozen=True)
class Waiting:
    position: int  # 1 is next
    waited_s: float
    need_mb: float
    free_mb: float


class Gate:
    def __init__(self, settings: Settings, max_wait_s: float = 120.0, free_mb: Callable[[], float] | None = None):
        self._settings = settings
        self.max_wait_s = max_wait_s
        self._free_now = free_mb or self._measure_capacity
        self._lock = threading.Condition()
        self._queue: deque[object] = deque()
        self._reserved: dict[object, float] = {}

    @property
    def running(self) -> int:
        return len(self._reserved)

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @contextmanager
    def admit(self, need_mb: float, on_wait: Callable[[Waiting], None] | None = None) -> Iterator[None]:
        ticket = object()
        started = time.monotonic()
        with self._lock:
            self._queue.append(ticket)
            try:
                while True:
                    free = self._free_now() - sum(self._reserved.values())
                    head = self._queue[0] is ticket
                    if head and (need_mb <= free or not self._reserved):
                        break
                    waited = time.monotonic() - started
                    if waited >= self.max_wait_s:
                        ahead = self._queue.index(ticket)
                        raise Busy(
                            f"the server is busy: {self.running} render(s) running and {ahead} waiting ahead of "
                            f"yours after {waited:.0f} s; try again in a minute"
                        )
                    if on_wait is not None:
                        on_wait(Waiting(self._queue.index(ticket) + 1, waited, need_mb, free))
                    self._lock.wait(timeout=0.25)  # memory frees without a notify: look again soon
            except BaseException:
                self._queue.remove(ticket)
                self._lock.notify_all()
                raise
            self._queue.popleft()
            self._reserved[ticket] = need_mb
            self._lock.notify_all()
        try:
            yield
        finally:
            with self._lock:
                del self._reserved[ticket]
                self._lock.notify_all()

    def _measure_capacity(self) -> float:
        """The render budget as if no render were running: available memory plus what the
        running renders (this process's children) hold now."""
        reading = read_memory(self._settings.max_memory_mb)
        own = psutil.Process(os.getpid()).memory_info().rss / MB
        children = max(0.0, reading.app_rss_mb - own)
        return attempt_budget_mb(reading.available_mb + children)


class VisitorLimits:
    """One generation at a time per visitor, and a rate limit per visitor."""

    def __init__(self, per_window: int = 12, window_s: float = 600.0) -> None:
        self.per_window = per_window
        self.window_s = window_s
        self._lock = threading.Lock()
        self._active: set[str] = set()
        self._recent: dict[str, deque[float]] = {}

    @contextmanager
    def hold(self, visitor: str) -> Iterator[None]:
        now = time.monotonic()
        with self._lock:
            if visitor in self._active:
                raise Busy("your previous video is still being made; wait for it before starting another")
            recent = self._recent.setdefault(visitor, deque())
            while recent and now - recent[0] > self.window_s:
                recent.popleft()
            if len(recent) >= self.per_window:
                wait = self.window_s - (now - recent[0])
                raise Busy(
                    f"you have made {len(recent)} videos in the last {self.window_s / 60:.0f} minutes, the most "
                    f"allowed; try again in {wait / 60:.0f} minute(s)"
                )
            recent.append(now)
            self._active.add(visitor)
        try:
            yield
        finally:
            with self._lock:
                self._active.discard(visitor)


def default_need_mb(method: str, tier_name: str) -> float:
    return DEFAULT_NEED_MB.get((method, tier_name), 300.0)
