"""Quality tiers (the seed's table) and the choice of one from available memory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from engine.errors import InvalidInput
from engine.memory.costs import Prediction
from engine.settings import Settings

ASPECTS = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1)}
TIER_NAMES = ("high", "medium", "low")
HIGH_ABOVE_MB = 1024
MEDIUM_FROM_MB = 512


@dataclass(frozen=True)
class Tier:
    name: str
    short_side: int  # the "p": 1080p is 1920x1080 at 16:9 and 1080x1920 at 9:16
    video_kbps: int
    audio_kbps: int
    fps: int = 24
    max_duration_s: float | None = None

    def size(self, aspect: str = "16:9") -> tuple[int, int]:
        """Frame width and height for an aspect ratio; both even, as yuv420p needs."""
        if aspect not in ASPECTS:
            raise InvalidInput(f"aspect {aspect!r} is not offered; choose one of {', '.join(ASPECTS)}")
        aw, ah = ASPECTS[aspect]
        long_side = _even(self.short_side * max(aw, ah) / min(aw, ah))
        return (long_side, self.short_side) if aw >= ah else (self.short_side, long_side)


@dataclass(frozen=True)
class TierChoice:
    tier: Tier
    asked: str  # "auto" or a tier name
    reason: str
    prediction: Prediction | None = None  # what renders like this one cost, when history knows


_SEED_TIERS = {
    "high": Tier("high", 1080, 800, 128),
    "medium": Tier("medium", 720, 500, 64),
    "low": Tier("low", 480, 300, 48),
    "emergency": Tier("emergency", 480, 200, 32, fps=12, max_duration_s=60.0),
}


def tier(name: str, settings: Settings) -> Tier:
    """A tier by name, with MAX_RESOLUTION_HEIGHT and DEFAULT_BITRATE applied."""
    if name not in _SEED_TIERS:
        raise InvalidInput(f"tier {name!r} is not offered; choose auto, high, medium or low")
    base = _SEED_TIERS[name]
    if name == "high":
        base = replace(base, video_kbps=settings.default_bitrate_kbps)
    cap = _even(settings.max_resolution_height)
    return replace(base, short_side=min(base.short_side, cap))


def choose_tier(
    available_mb: float,
    asked: str,
    settings: Settings,
    learned: Callable[[str], Prediction | None] | None = None,
    budget_mb: float | None = None,
) -> TierChoice:
    """The tier for a request: forced by `asked`; else the best tier whose learned p95 peak
    fits `budget_mb` (`learned(tier)` gives what history measured); else from available memory."""
    predict = learned or (lambda _name: None)
    if asked != "auto":
        if asked not in TIER_NAMES:
            raise InvalidInput(f"tier {asked!r} is not offered; choose auto, high, medium or low")
        return TierChoice(tier(asked, settings), asked, f"forced by the request ({asked})", predict(asked))
    known = [(name, predict(name)) for name in TIER_NAMES if predict(name) is not None]
    fitting = [(name, p) for name, p in known if budget_mb is not None and p.p95_peak_mb <= budget_mb]
    if fitting:
        name, p = fitting[0]
        why = (
            f"learned from {p.runs} {p.method} renders of {p.band}: p95 peak {p.p95_peak_mb:.0f} MB "
            f"fits the {budget_mb:.0f} MB budget"
        )
        return TierChoice(tier(name, settings), "auto", why, p)
    choice = _seed_choice(available_mb, settings)
    return replace(choice, prediction=predict(choice.tier.name))


def _seed_choice(available_mb: float, settings: Settings) -> TierChoice:
    if available_mb > HIGH_ABOVE_MB:
        name, why = "high", f"{available_mb:.0f} MB available, above {HIGH_ABOVE_MB} MB"
    elif available_mb >= MEDIUM_FROM_MB:
        name, why = "medium", f"{available_mb:.0f} MB available, {MEDIUM_FROM_MB} to {HIGH_ABOVE_MB} MB"
    else:
        name, why = "low", f"{available_mb:.0f} MB available, below {MEDIUM_FROM_MB} MB"
    chosen = tier(name, settings)
    if chosen.short_side < _SEED_TIERS[name].short_side:
        why += f"; capped at {chosen.short_side}p by MAX_RESOLUTION_HEIGHT"
    return TierChoice(chosen, "auto", why)


def _even(value: float) -> int:
    return round(value / 2) * 2
