"""Per-visitor limits of the public demo: one generation at a time, and so many in a window.

Counted per app process (its sessions share one); a visitor is the client's address when
Streamlit knows it, else the browser session.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from engine.errors import LimitReached


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
                raise LimitReached("your previous video is still being made; wait for it before starting another")
            recent = self._recent.setdefault(visitor, deque())
            while recent and now - recent[0] > self.window_s:
                recent.popleft()
            if len(recent) >= self.per_window:
                wait = self.window_s - (now - recent[0])
                raise LimitReached(
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
