"""Tiers learned from history: what a render will cost, from what renders like it cost.

Renders are alike when they share method, tier and duration band. With at least
MIN_RUNS of them, the automatic tier is the best whose measured p95 peak memory fits
the render budget; with fewer, the seed's fixed thresholds (1 GB, 512 MB) decide.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass

from engine.history import HistoryStore

MIN_RUNS = 5
BANDS_S = (15.0, 60.0, 180.0)  # duration bands: under 15 s, 15-60 s, 60-180 s, longer
CHARS_PER_S = 15.0  # offline speech at 165 words a minute; gTTS is close


@dataclass(frozen=True)
class Prediction:
    method: str
    tier: str
    band: str
    runs: int
    p95_peak_mb: float
    median_s_per_video_s: float

    def wall_s(self, duration_s: float) -> float:
        return round(self.median_s_per_video_s * duration_s, 2)


@dataclass(frozen=True)
class Profile:
    """The measured cost of every (method, tier, band) with enough runs."""

    cells: dict[tuple[str, str, str], Prediction]

    def get(self, method: str, tier_name: str, duration_s: float) -> Prediction | None:
        return self.cells.get((method, tier_name, band(duration_s)))


def band(duration_s: float) -> str:
    low = 0.0
    for high in BANDS_S:
        if duration_s < high:
            return f"{low:.0f}-{high:.0f} s"
        low = high
    return f"over {low:.0f} s"


def estimated_duration_s(text: str) -> float:
    """Speech length before speaking, for choosing a tier; the real length is known later."""
    return max(1.0, len(text) / CHARS_PER_S)


def learn(store: HistoryStore, recent: int = 2000) -> Profile:
    """Group the successful attempts of the `recent` newest videos; keep the groups with enough runs."""
    groups: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
    for method, tier_name, peak_mb, wall_s, seconds in store.recent_ok_attempts(recent):
        groups[(method, tier_name, band(seconds))].append((peak_mb, wall_s / seconds))
    cells = {}
    for (method, tier_name, duration_band), runs in groups.items():
        if len(runs) >= MIN_RUNS:
            peaks = sorted(peak for peak, _ in runs)
            p95 = peaks[max(0, math.ceil(0.95 * len(peaks)) - 1)]
            cells[(method, tier_name, duration_band)] = Prediction(
                method, tier_name, duration_band, len(runs), round(p95, 1),
                round(statistics.median(rate for _, rate in runs), 4),
            )  # fmt: skip
    return Profile(cells)
