"""Figures from the history: success, fallbacks, memory and time per generation.

`failed` counts generations the app accepted and could not finish (every method
failed, speech failed, interrupted); `refused` counts requests turned away before any
work (invalid input, not enough memory, busy). `success_rate` is succeeded over accepted.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter, defaultdict

from engine.choices import WINDOWS
from engine.history import GenerationRecord, HistoryStore

REFUSALS = {"invalid_input", "not_enough_memory", "busy", "limit", "refused"}  # turned away before any work


def stats(store: HistoryStore, window: str = "all", now: float | None = None) -> dict:
    span = WINDOWS[window]
    since = None if span is None else (now or time.time()) - span
    rows = store.generations(since=since)
    figures = {"window": window, **summary(rows), "running": sum(r.status == "running" for r in rows)}
    figures["by_tier"] = {k: summary(v) for k, v in _group(rows, "tier").items()}
    figures["by_method"] = {k: summary(v) for k, v in _group(rows, "method").items()}
    return figures


def summary(rows: list[GenerationRecord]) -> dict:
    finished = [r for r in rows if r.status != "running"]
    ok = [r for r in finished if r.status == "ok"]
    refused = [r for r in finished if r.error_kind in REFUSALS]
    failed = [r for r in finished if r.status != "ok" and r.error_kind not in REFUSALS]
    accepted = len(ok) + len(failed)
    per_video_s = [r.wall_s / r.duration_s for r in ok if r.wall_s and r.duration_s]
    return {
        "total": len(finished),
        "succeeded": len(ok),
        "failed": len(failed),
        "refused": len(refused),
        "success_rate": _ratio(len(ok), accepted),
        "fallback_rate": _ratio(sum(bool(r.fell_back) for r in ok), len(ok)),
        "methods": dict(Counter(r.method for r in ok if r.method)),
        "peak_rss_mb": spread([r.peak_rss_mb for r in finished if r.peak_rss_mb]),
        "s_per_video_s": spread(per_video_s),
    }


def spread(values: list[float]) -> dict:
    """Median and 95th percentile (nearest rank), or None for no values."""
    if not values:
        return {"median": None, "p95": None, "count": 0}
    ordered = sorted(values)
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
    return {"median": round(statistics.median(ordered), 2), "p95": round(p95, 2), "count": len(ordered)}


def _group(rows: list[GenerationRecord], key: str) -> dict[str, list[GenerationRecord]]:
    groups: dict[str, list[GenerationRecord]] = defaultdict(list)
    for row in rows:
        value = getattr(row, key)
        if value:
            groups[value].append(row)
    return dict(sorted(groups.items()))


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
