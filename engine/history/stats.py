"""Figures from the history: success, fallbacks, memory and time per generation, aggregated in SQL.

`failed` counts generations the app accepted and could not finish (every method failed,
speech failed, interrupted); `refused` counts requests turned away before any work (invalid
input, too small, busy, a visitor's limit). `success_rate` is succeeded over accepted.

Counts come from one GROUP BY, and the numbers behind the percentiles of peak memory and of time
per second of video from another, both over one index that holds the grouping columns and the
numbers (no row is read): about a tenth of a second at 100,000 generations, where reading whole
rows took seconds.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from engine.choices import WINDOWS
from engine.errors import KINDS, InvalidInput, Refused
from engine.history import HistoryStore, schema

# Turned away before any work: invalid input, and every kind of refusal (too small, busy, a limit).
REFUSALS = {InvalidInput.kind} | {cls.kind for cls in KINDS.values() if issubclass(cls, Refused)}


@dataclass(frozen=True)
class Filters:
    """Which generations a view counts: since when, and which tiers, methods and statuses (empty: all)."""

    since: float | None = None
    tiers: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()

    @classmethod
    def window(cls, name: str, now: float | None = None, **choices: tuple[str, ...]) -> Filters:
        span = WINDOWS[name]
        return cls(None if span is None else (now or time.time()) - span, **choices)

    def where(self) -> list:
        g = schema.generations
        conditions = []
        if self.since is not None:
            conditions.append(g.c.created_at >= self.since)
        for column, chosen in ((g.c.tier, self.tiers), (g.c.method, self.methods), (g.c.status, self.statuses)):
            if chosen:
                conditions.append(column.in_(chosen))
        return conditions


def stats(store: HistoryStore, window: str = "all", now: float | None = None) -> dict:
    """The figures of `stats --json` and `GET /api/stats` over a time window."""
    return {"window": window, **figures(store, Filters.window(window, now))}


def figures(store: HistoryStore, filters: Filters) -> dict:
    """Overall, per tier and per method: counts, rates, and the spread of peak memory and speed."""
    g = schema.generations
    group = [g.c.tier, g.c.method, g.c.status, g.c.error_kind, g.c.fell_back]
    counted = sa.select(*group, sa.func.count()).where(*filters.where()).group_by(*group)
    # Each (tier, method) group's numbers come back as two comma-joined strings, parsed in C by
    # numpy: a row per group instead of a Python tuple per generation.
    speed = sa.case((sa.and_(g.c.status == "ok", g.c.wall_s > 0, g.c.duration_s > 0), g.c.wall_s / g.c.duration_s))
    peak = sa.case((g.c.peak_rss_mb > 0, g.c.peak_rss_mb))
    numbers = (
        sa.select(g.c.tier, g.c.method, _joined(peak), _joined(speed))
        .where(*filters.where(), g.c.status != "running")
        .group_by(g.c.tier, g.c.method)
    )
    with store.engine.connect() as conn:
        counts = [tuple(row) for row in conn.execute(counted)]
        measured = [(row[0], row[1], _floats(row[2]), _floats(row[3])) for row in conn.execute(numbers)]
    overall = {**_summary(counts), **_spreads(measured)}
    overall["running"] = sum(row[-1] for row in counts if row[2] == "running")
    overall["by_tier"] = {
        name: {**_summary(_of(counts, 0, name)), **_spreads([m for m in measured if m[0] == name])}
        for name in _names(counts, 0)
    }
    overall["by_method"] = {
        name: {**_summary(_of(counts, 1, name)), **_spreads([m for m in measured if m[1] == name])}
        for name in _names(counts, 1)
    }
    return overall


def _joined(value: sa.ColumnElement) -> sa.ColumnElement:
    """The values of a group as one comma-joined string (group_concat, string_agg); NULLs left out."""
    return sa.func.aggregate_strings(sa.cast(value, sa.Text), ",")


def _floats(joined: str | None) -> np.ndarray:
    return np.array(joined.split(","), dtype=float) if joined else np.zeros(0)


def _spreads(measured: list[tuple]) -> dict:
    peaks = np.concatenate([m[2] for m in measured]) if measured else np.zeros(0)
    speeds = np.concatenate([m[3] for m in measured]) if measured else np.zeros(0)
    return {"peak_rss_mb": spread(peaks), "s_per_video_s": spread(speeds)}


def _names(counts: list[tuple], index: int) -> list[str]:
    return sorted({row[index] for row in counts if row[index]})


def _of(counts: list[tuple], index: int, name: str) -> list[tuple]:
    return [row for row in counts if row[index] == name]


def _summary(counts: Iterable[tuple]) -> dict:
    total = ok = failed = refused = fell_back = 0
    methods: dict[str, int] = defaultdict(int)
    for _tier, method, status, kind, fell, n in counts:
        if status == "running":
            continue
        total += n
        if status == "ok":
            ok += n
            fell_back += n if fell else 0
            if method:
                methods[method] += n
        elif kind in REFUSALS:
            refused += n
        else:
            failed += n
    return {
        "total": total,
        "succeeded": ok,
        "failed": failed,
        "refused": refused,
        "success_rate": _ratio(ok, ok + failed),
        "fallback_rate": _ratio(fell_back, ok),
        "methods": dict(sorted(methods.items())),
    }


def spread(values: Iterable[float] | np.ndarray) -> dict:
    """Median and 95th percentile (nearest rank), or None for no values."""
    ordered = np.sort(np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float))
    if not len(ordered):
        return {"median": None, "p95": None, "count": 0}
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
    return {"median": round(float(np.median(ordered)), 2), "p95": round(float(p95), 2), "count": len(ordered)}


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
