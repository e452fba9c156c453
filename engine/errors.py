"""The one exception hierarchy of the engine.

QuoteError
├── ConfigError        a setting (environment variable) has a bad value
├── InvalidInput       the request cannot be served as asked (text, options, upload)
├── NotEnoughMemory    admission refused: too little memory right now
│   └── Busy           the queue or a visitor's limit is full: try again soon
├── SpeechFailed       no speech engine produced usable audio
└── RenderFailed       every render method failed

Every message is a sentence a visitor can act on: what was wrong, what to do.
"""

from __future__ import annotations


class QuoteError(Exception):
    """Base of every error the engine raises on purpose."""

    #: Exit code of the CLI for this kind of failure.
    exit_code = 1
    #: What the generation knew when it failed (an engine.models.Result), set by generate().
    result = None


class ConfigError(QuoteError):
    exit_code = 2


class InvalidInput(QuoteError):
    exit_code = 2


class NotEnoughMemory(QuoteError):
    exit_code = 3

    def __init__(self, available_mb: float, needed_mb: float) -> None:
        self.available_mb = available_mb
        self.needed_mb = needed_mb
        super().__init__(
            f"not enough memory: {available_mb:.0f} MB available, {needed_mb:.0f} MB needed; try again in a moment"
        )


class Busy(NotEnoughMemory):
    """Refused for load, not for the request: the same exit code as not enough memory."""

    def __init__(self, message: str) -> None:
        QuoteError.__init__(self, message)


class SpeechFailed(QuoteError):
    exit_code = 1


class RenderFailed(QuoteError):
    exit_code = 1
