"""The store shared by everything in one process (pages, HTTP routes, CLI), opened once."""

from __future__ import annotations

from functools import cache

from engine.history import HistoryStore
from engine.history.storage import cleanup
from engine.memory.admission import Gate, VisitorLimits
from engine.settings import Settings


@cache
def shared_store(settings: Settings) -> HistoryStore:
    """Open (and migrate) the history, then tidy up after any earlier crash: rows left
    running are marked interrupted, orphaned temp folders swept, the quota enforced."""
    store = HistoryStore.open(settings)
    cleanup(settings, store)
    return store


@cache
def shared_gate(settings: Settings) -> Gate:
    """The admission gate every session and CLI worker of this process shares."""
    return Gate(settings)


@cache
def shared_limits() -> VisitorLimits:
    return VisitorLimits()
