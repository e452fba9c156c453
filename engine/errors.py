"""The one exception hierarchy of the engine.

QuoteError
├── ConfigError        a setting (environment variable) has a bad value
├── InvalidInput       the request cannot be served as asked (text, options, upload)
├── Refused            turned away before any work (exit 3)
│   ├── NotEnoughMemory    this machine is too small for the smallest render: it can never fit
│   ├── Busy               it waited its turn for memory and the wait ran out: try again soon
│   └── LimitReached       a visitor's own limit (one at a time, so many an hour)
├── SpeechFailed       no speech engine produced usable audio
├── RenderFailed       every render method failed
├── QueueUnreachable   the job queue (BROKER_URL) stopped answering while a job was waited for
└── HistoryUnavailable the history database (DATA_DIR or DATABASE_URL) could not be read or written

Every message is a sentence a visitor can act on: what was wrong, what to do. `kind`
names the class in the history and across a job queue, so nobody branches on message text.
"""

from __future__ import annotations

from typing import Any, ClassVar


class QuoteError(Exception):
    """Base of every error the engine raises on purpose."""

    #: Exit code of the CLI for this kind of failure.
    exit_code: ClassVar[int] = 1
    #: The name of this kind of failure in the history and over the queue.
    kind: ClassVar[str] = "error"
    #: What the generation knew when it failed (an engine.models.Result), set by generate().
    result: Any = None

    def details(self) -> dict[str, Any]:
        """The figures this error carries beside its message (sent over a queue with it)."""
        return {}


class ConfigError(QuoteError):
    exit_code = 2
    kind = "config"


class InvalidInput(QuoteError):
    exit_code = 2
    kind = "invalid_input"


class Refused(QuoteError):
    """Turned away before any work was done."""

    exit_code = 3
    kind = "refused"


class NotEnoughMemory(Refused):
    """The smallest render does not fit this machine even with nothing else rendering."""

    kind = "not_enough_memory"

    def __init__(self, available_mb: float, needed_mb: float, needed_by: str = "the smallest render needs") -> None:
        self.available_mb = available_mb
        self.needed_mb = needed_mb
        self.needed_by = needed_by
        super().__init__(
            f"this machine is too small: {available_mb:.0f} MB available for a render, {needed_by} "
            f"{needed_mb:.0f} MB; give it more memory, or stop other programs using it"
        )

    def details(self) -> dict[str, Any]:
        return {"available_mb": self.available_mb, "needed_mb": self.needed_mb, "needed_by": self.needed_by}


class Busy(Refused):
    """The request would fit, but waited its turn in the memory ledger longer than allowed."""

    kind = "busy"

    def __init__(self, running: int, ahead: int, waited_s: float, needed_mb: float, free_mb: float) -> None:
        self.running = running
        self.ahead = ahead
        self.waited_s = waited_s
        self.needed_mb = needed_mb
        self.free_mb = free_mb
        super().__init__(
            f"busy: {running} render(s) running and {ahead} waiting ahead of yours after {waited_s:.0f} s "
            f"(yours needs {needed_mb:.0f} MB, {max(0.0, free_mb):.0f} MB free); try again in a minute"
        )

    def details(self) -> dict[str, Any]:
        return {
            "running": self.running, "ahead": self.ahead, "waited_s": self.waited_s,
            "needed_mb": self.needed_mb, "free_mb": self.free_mb,
        }  # fmt: skip


class LimitReached(Refused):
    """A visitor's own limit: one generation at a time, and so many in a window."""

    kind = "limit"


class SpeechFailed(QuoteError):
    kind = "speech_failed"


class RenderFailed(QuoteError):
    kind = "render_failed"


class QueueUnreachable(QuoteError):
    kind = "queue_unreachable"


class HistoryUnavailable(QuoteError):
    """A generation goes on without its row when this is raised writing it (it is logged)."""

    kind = "history_unavailable"

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"the history database could not be read or written ({reason}); check that DATA_DIR is writable "
            "and has room, or that DATABASE_URL reaches the database"
        )


KINDS: dict[str, type[QuoteError]] = {
    cls.kind: cls
    for cls in (
        QuoteError,
        ConfigError,
        InvalidInput,
        Refused,
        NotEnoughMemory,
        Busy,
        LimitReached,
        SpeechFailed,
        RenderFailed,
        QueueUnreachable,
        HistoryUnavailable,
    )
}


def rebuild(kind: str, message: str, details: dict[str, Any] | None = None) -> QuoteError:
    """The error of `kind` with `message` and its figures, as sent over a queue: the same class
    on both sides, without re-deriving its message."""
    cls = KINDS.get(kind, QuoteError)
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    for name, value in (details or {}).items():
        setattr(error, name, value)
    return error
