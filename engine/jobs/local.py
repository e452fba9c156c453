"""A generation running off the caller's thread, with a snapshot of its progress to poll.

The dashboard starts one per visitor and polls it from a fragment; the job itself never
touches Streamlit. A visitor who closes the tab leaves the job to finish and be recorded.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from engine.errors import QuoteError
from engine.history import HistoryStore
from engine.memory.ledger import Ledger
from engine.memory.limits import VisitorLimits
from engine.models import Attempt, AttemptEvent, MemorySample, ProgressEvent, Request, Result, StageEvent
from engine.pipeline import generate
from engine.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationView:
    stage: str
    message: str
    elapsed_s: float
    samples: tuple[MemorySample, ...]
    attempts: tuple[Attempt, ...]
    done: bool
    result: Result | None
    error: QuoteError | None


class RunningGeneration(Protocol):
    """What the page and the CLI use of a generation, wherever it runs (LocalGeneration here,
    RemoteGeneration on the workers)."""

    request: Request

    @property
    def done(self) -> bool: ...

    def wait(self, timeout_s: float | None = None) -> bool: ...

    def snapshot(self) -> GenerationView: ...


class OffThread:
    """Runs `_body()` once on a daemon thread; `wait()` and `done` tell when it has ended."""

    def __init__(self, name: str) -> None:
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def wait(self, timeout_s: float | None = None) -> bool:
        return self._finished.wait(timeout_s)

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    def _main(self) -> None:
        try:
            self._body()
        finally:
            self._finished.set()

    def _body(self) -> None:
        raise NotImplementedError


class LocalGeneration(OffThread):
    def __init__(
        self,
        request: Request,
        settings: Settings,
        store: HistoryStore | None,
        ledger: Ledger | None = None,
        visitor: tuple[VisitorLimits, str] | None = None,
    ) -> None:
        super().__init__("generation")
        self.request = request
        self._settings = settings
        self._store = store
        self._ledger = ledger
        self._visitor = visitor
        self._lock = threading.Lock()
        self._stage, self._message = "queued", "waiting to start"
        self._samples: list[MemorySample] = []
        self._attempts: list[Attempt] = []
        self._result: Result | None = None
        self._error: QuoteError | None = None
        self._started = time.monotonic()

    def start(self) -> LocalGeneration:
        self._started = time.monotonic()
        return super().start()

    def snapshot(self) -> GenerationView:
        with self._lock:
            return GenerationView(
                self._stage, self._message, time.monotonic() - self._started, tuple(self._samples),
                tuple(self._attempts), self.done, self._result, self._error,
            )  # fmt: skip

    def _body(self) -> None:
        try:
            limits, visitor = self._visitor or (VisitorLimits(), "")
            with limits.hold(visitor):
                result = generate(self.request, self._settings, self._on_event, self._store, self._ledger)
            with self._lock:
                self._result = result
        except QuoteError as exc:
            with self._lock:
                self._error = exc
        except Exception as exc:  # a bug: say so in one sentence, keep the traceback in the log
            log.exception("generation crashed")
            with self._lock:
                self._error = QuoteError(f"internal error ({type(exc).__name__}); please try again")

    def _on_event(self, event: ProgressEvent) -> None:
        with self._lock:
            if isinstance(event, MemorySample):
                self._samples.append(event)
            elif isinstance(event, AttemptEvent):
                self._attempts.append(event.attempt)
            elif isinstance(event, StageEvent):
                self._stage, self._message = event.stage, event.message


class BackgroundTask(OffThread):
    """Any long call run off the caller's thread (the tuning sweep), polled for its outcome."""

    def __init__(self, work, *args) -> None:
        super().__init__("background-task")
        self._work, self.args = work, args
        self.lines: list[str] = []  # progress, one line per step
        self.result = None
        self.error: Exception | None = None

    def _body(self) -> None:
        try:
            self.result = self._work(*self.args, progress=self.lines.append)
        except Exception as exc:  # shown to the tuning team as a sentence; the traceback is logged
            log.exception("background task failed")
            self.error = exc
