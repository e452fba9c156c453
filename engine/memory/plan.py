"""Planning a render before it runs: the method chain, the memory budget, the tier."""

from __future__ import annotations

from dataclasses import replace

from engine.history import HistoryStore
from engine.memory.costs import estimated_duration_s, learn
from engine.memory.reading import MemoryReading
from engine.memory.tiers import TierChoice, choose_tier
from engine.models import Request
from engine.render.job import METHODS
from engine.settings import Settings

SAFETY_MARGIN_MB = 16.0
SAFETY_MARGIN_SHARE = 0.10


def method_chain(request: Request) -> list[str]:
    """Methods to try in order. Auto starts at MoviePy only when motion needs it: for a
    still card FFmpeg makes the same video at a fraction of the memory and time."""
    first = request.method
    if first == "auto":
        first = "moviepy" if request.motion else "ffmpeg"
    chain = list(METHODS[METHODS.index(first) :])
    return chain if request.fallback else chain[:1]


def attempt_budget_mb(available_mb: float) -> float:
    """What one attempt may hold: available memory less a safety margin."""
    return max(0.0, available_mb - max(SAFETY_MARGIN_MB, available_mb * SAFETY_MARGIN_SHARE))


def plan_tier(request: Request, settings: Settings, reading: MemoryReading, store: HistoryStore | None) -> TierChoice:
    """The tier for a request, learned from the store's history of the first method when it
    has enough of it, from the seed's thresholds otherwise; the reason says which."""
    first = method_chain(request)[0]
    seconds = estimated_duration_s(request.text)
    profile = learn(store) if store is not None else None
    learned = (lambda name: profile.get(first, name, seconds)) if profile is not None else None
    choice = choose_tier(reading.available_mb, request.tier, settings, learned, attempt_budget_mb(reading.available_mb))
    if request.tier == "auto" and reading.bound_by != "host" and choice.prediction is None:
        choice = replace(choice, reason=f"{choice.reason} (bound by {reading.bound_by})")
    return choice
