"""What every session and request of one process shares (pages, HTTP routes, CLI), opened once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import cache
from typing import TypeVar

from engine.history import HistoryStore
from engine.history.storage import cleanup
from engine.jobs.batch import PageBatch
from engine.memory.ledger import Ledger
from engine.memory.limits import VisitorLimits
from engine.memory.malloc import give_back_big_buffers
from engine.settings import Settings

T = TypeVar("T")


@cache
def shared_store(settings: Settings) -> HistoryStore:
    """The history, opened (and migrated, in a process of its own) once per process."""
    return HistoryStore.open(settings, migrate_apart=True)


def start_up(settings: Settings) -> HistoryStore:
    """What an entry point (the app's server, a CLI command, a worker) does once as it starts: open
    the history, then tidy up after any earlier crash: rows left running by a dead process are
    marked interrupted, its render processes killed, orphaned temp folders swept, the quota
    enforced. The shared store. Big buffers go back to the system when freed (engine.memory.malloc)."""
    give_back_big_buffers()
    store = shared_store(settings)
    cleanup(settings, store)
    return store


@cache
def shared_ledger(settings: Settings) -> Ledger:
    """This process's view of the host-wide memory ledger under DATA_DIR."""
    return Ledger(settings.data_dir, settings.max_memory_mb, max_wait_s=settings.admission_wait_s)


@cache
def shared_limits() -> VisitorLimits:
    """The per-visitor limits of this process: 12 videos in 10 minutes, or one batch's worth when
    MAX_BATCH_ROWS is set higher (so a batch the server allows is not held back row by row)."""
    return VisitorLimits(per_window=max(12, Settings.from_env().max_batch_rows))


@cache
def shared_batches() -> dict[str, PageBatch]:
    """The page's batches by id (an unguessable one, in the page's address): a reload finds its batch here."""
    return {}


_RECENT: dict[object, tuple[float, object]] = {}
_RECENT_LOCK = threading.Lock()


def recent(key: object, compute: Callable[[], T], ttl_s: float = 5.0) -> T:
    """`compute()`'s answer, reused for `ttl_s` seconds per key: figures a dashboard polls need
    not be read again for every request."""
    now = time.monotonic()
    with _RECENT_LOCK:
        found = _RECENT.get(key)
        if found is not None and now - found[0] < ttl_s:
            return found[1]  # type: ignore[return-value]
    value = compute()
    with _RECENT_LOCK:
        _RECENT[key] = (now, value)
    return value


def forget_recent(database_url: str) -> None:
    """Drop what `recent` keeps for a database (after a cleanup changed it)."""
    with _RECENT_LOCK:
        for key in [k for k in _RECENT if isinstance(k, tuple) and k and k[0] == database_url]:
            del _RECENT[key]
