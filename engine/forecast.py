"""What a request would get if it ran now: the tier memory gives, its size and bitrates."""

from __future__ import annotations

from dataclasses import dataclass

from engine.memory import MemoryReading, read_memory
from engine.pipeline import attempt_budget_mb
from engine.settings import Settings
from engine.tiers import TierChoice, choose_tier


@dataclass(frozen=True)
class Forecast:
    choice: TierChoice
    width: int
    height: int
    memory: MemoryReading
    budget_mb: float


def forecast(tier_asked: str, aspect: str, settings: Settings) -> Forecast:
    memory = read_memory(settings.max_memory_mb)
    choice = choose_tier(memory.available_mb, tier_asked, settings)
    width, height = choice.tier.size(aspect)
    return Forecast(choice, width, height, memory, attempt_budget_mb(memory.available_mb))
