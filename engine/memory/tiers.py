"""Quality tiers (the seed's table), and the seed's fixed thresholds for choosing one.

The measured policy (engine.memory.plan) chooses from what a render is predicted to cost;
`seed_tier_name` is kept exactly as the seed wrote it, for TIER_POLICY=seed and for the
report's "the seed would have chosen".
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from engine.choices import ASPECTS, PRESETS, TIER_CHOICES
from engine.errors import InvalidInput
from engine.settings import Settings

HIGH_ABOVE_MB = 1024
MEDIUM_FROM_MB = 512
SEED_FLOOR_MB = 400  # the seed's pre-generation check


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


_SEED_TIERS = {
    "high": Tier("high", 1080, 800, 128),
    "medium": Tier("medium", 720, 500, 64),
    "low": Tier("low", 480, 300, 48),
    # 24 fps, not the seed's 12: platforms take 23 to 60 (a still card's frames cost next to nothing).
    "emergency": Tier("emergency", 480, 200, 32, max_duration_s=60.0),
}


def frame_rate(preset: str | None, used: Tier) -> int:
    """Frames per second of a video at tier `used`: the platform preset's when it sets one (reels: 30)."""
    return (PRESETS[preset][1] if preset else None) or used.fps


def tier(name: str, settings: Settings) -> Tier:
    """A tier by name, with MAX_RESOLUTION_HEIGHT and DEFAULT_BITRATE applied."""
    if name not in _SEED_TIERS:
        raise InvalidInput(f"tier {name!r} is not offered; choose one of: {', '.join(TIER_CHOICES)}")
    base = _SEED_TIERS[name]
    if name == "high":
        base = replace(base, video_kbps=settings.default_bitrate_kbps)
    cap = _even(settings.max_resolution_height)
    return replace(base, short_side=min(base.short_side, cap))


def capped(chosen: Tier) -> bool:
    """Is this tier smaller than the seed's table says, because of MAX_RESOLUTION_HEIGHT?"""
    return chosen.short_side < _SEED_TIERS[chosen.name].short_side


def seed_tier_name(available_mb: float) -> str:
    """The seed's table: high above 1 GB available, medium from 512 MB, low below."""
    if available_mb > HIGH_ABOVE_MB:
        return "high"
    return "medium" if available_mb >= MEDIUM_FROM_MB else "low"


def seed_reason(available_mb: float) -> str:
    name = seed_tier_name(available_mb)
    if name == "high":
        return f"{available_mb:.0f} MB available, above {HIGH_ABOVE_MB} MB"
    if name == "medium":
        return f"{available_mb:.0f} MB available, {MEDIUM_FROM_MB} to {HIGH_ABOVE_MB} MB"
    return f"{available_mb:.0f} MB available, below {MEDIUM_FROM_MB} MB"


def _even(value: float) -> int:
    return round(value / 2) * 2
