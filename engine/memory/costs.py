"""The cost model: what a render and a speech engine are predicted to cost, from measurement.

A prior, measured on the development machine by `python -m engine calibrate` and shipped as
`cost-prior.json`, gives for every cell (method, tier, aspect, captions, motion, duration band)
the p95 peak memory of the render tree and the median wall time per second of video, and the
peak of each speech engine. This host's history replaces a cell with its own measurement once
it holds MIN_RUNS successful renders of that cell.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PRIOR_FILE = Path(__file__).with_name("cost-prior.json")
# Duration bands. MoviePy's peak grows with duration only until its writer's frame queue is
# full, a few seconds in (measured: +18% from 10 s to 30 s, +5% from 30 s to 300 s, which the
# prediction margin covers); the FFmpeg methods are flat. So two bands: short, and the rest.
BANDS_S = (15.0,)
MIN_RUNS = 8  # a cell's own history replaces the prior from this many runs
CHARS_PER_S = 15.0  # offline speech at 165 words a minute; gTTS is close
# A cell nobody measured (a prior from an older renderer): MoviePy's plain appetite at 1080p.
UNKNOWN = 700.0


@dataclass(frozen=True)
class CostKey:
    """What measurably moves a render's cost (see README, "Choosing a tier")."""

    method: str  # moviepy, ffmpeg, emergency
    tier: str  # high, medium, low, emergency
    aspect: str = "16:9"
    captions: bool = False
    motion: bool = False
    band: str = "0-15 s"

    def as_dict(self) -> dict:
        return {"method": self.method, "tier": self.tier, "aspect": self.aspect, "captions": self.captions,
                "motion": self.motion, "band": self.band}  # fmt: skip


@dataclass(frozen=True)
class Cost:
    peak_mb: float  # p95 peak RSS of the render tree
    s_per_video_s: float  # median wall seconds per second of video
    runs: int
    source: str  # "prior", "history" or "unknown"

    def wall_s(self, duration_s: float) -> float:
        return round(self.s_per_video_s * duration_s, 2)

    def describe(self) -> str:
        if self.source == "history":
            return f"measured on this host, p95 of {self.runs} renders"
        if self.source == "prior":
            return "from the calibrated prior"
        return "no measurement yet: assumed the worst"


def key_for(method: str, tier: str, aspect: str, captions: bool, motion: bool, duration_s: float) -> CostKey:
    """The cell a render falls in. Only MoviePy renders motion; the emergency render has no
    captions or motion and lasts at most 60 s."""
    if method == "emergency":
        return CostKey("emergency", "emergency", aspect, False, False, band(min(duration_s, 60.0)))
    return CostKey(method, tier, aspect, captions, motion and method == "moviepy", band(duration_s))


def band(duration_s: float) -> str:
    low = 0.0
    for high in BANDS_S:
        if duration_s < high:
            return f"{low:.0f}-{high:.0f} s"
        low = high
    return f"over {low:.0f} s"


def estimated_duration_s(text: str) -> float:
    """Speech length before speaking, for a forecast; the real length is known after speech."""
    return max(1.0, len(text) / CHARS_PER_S)


def p95(values: Iterable[float]) -> float:
    """The 95th percentile by nearest rank: with few values, the largest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


class CostModel:
    """The prior, with this host's history laid over it cell by cell."""

    def __init__(
        self,
        prior: dict[CostKey, Cost],
        speech_mb: dict[str, float] | None = None,
        learned: dict[CostKey, Cost] | None = None,
    ) -> None:
        self.prior = prior
        self.speech_mb = speech_mb or {}
        self.learned = learned or {}

    def predict(self, key: CostKey) -> Cost:
        """The cell's own history, else its prior, else the costliest cell of its method and tier."""
        found = self.learned.get(key) or self.prior.get(key)
        if found is not None:
            return found
        alike = [c for k, c in self.prior.items() if (k.method, k.tier) == (key.method, key.tier)]
        if alike:
            worst = max(alike, key=lambda c: c.peak_mb)
            return Cost(worst.peak_mb, worst.s_per_video_s, 0, "unknown")
        return Cost(UNKNOWN, 1.0, 0, "unknown")

    def cheapest_mb(self) -> float:
        """The p95 peak of the cheapest render that still delivers a video (the emergency render)."""
        emergency = [c.peak_mb for k, c in {**self.prior, **self.learned}.items() if k.method == "emergency"]
        return max(emergency) if emergency else UNKNOWN

    def with_learned(self, learned: dict[CostKey, Cost], speech_mb: dict[str, float] | None = None) -> CostModel:
        return CostModel(self.prior, {**self.speech_mb, **(speech_mb or {})}, learned)


@cache
def load_prior(path: Path = PRIOR_FILE) -> CostModel:
    """The shipped prior (read once per process); an empty model when the file is missing."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return CostModel({})
    cells = {}
    for row in data["render"]:
        key = CostKey(row["method"], row["tier"], row["aspect"], row["captions"], row["motion"], row["band"])
        cells[key] = Cost(row["peak_mb"], row["s_per_video_s"], row["runs"], "prior")
    return CostModel(cells, {row["engine"]: row["peak_mb"] for row in data.get("speech", ())})


def learn(rows: Iterable[tuple[CostKey, float, float | None]]) -> dict[CostKey, Cost]:
    """Cells with at least MIN_RUNS renders, from (key, peak MB, wall s per video s). A render the
    watchdog stopped counts for its peak (at least what it reached) with no time (None): it did not
    run to its end."""
    groups: dict[CostKey, list[tuple[float, float | None]]] = defaultdict(list)
    for key, peak_mb, rate in rows:
        groups[key].append((peak_mb, rate))
    learned = {}
    for key, runs in groups.items():
        rates = [rate for _, rate in runs if rate is not None]
        if len(runs) >= MIN_RUNS and rates:
            peak = round(p95(peak for peak, _ in runs), 1)
            learned[key] = Cost(peak, round(statistics.median(rates), 4), len(runs), "history")
    return learned


def learn_speech(rows: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Each voice's p95 peak, from (engine, peak MB), for voices with at least MIN_RUNS runs."""
    groups: dict[str, list[float]] = defaultdict(list)
    for engine, peak_mb in rows:
        groups[engine].append(peak_mb)
    return {engine: round(p95(peaks), 1) for engine, peaks in groups.items() if len(peaks) >= MIN_RUNS}
