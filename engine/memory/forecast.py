"""What a request would get if it ran now: the tier, its size and bitrates, the predicted cost."""

from __future__ import annotations

from dataclasses import dataclass

from engine.history import HistoryStore
from engine.memory.costs import estimated_duration_s
from engine.memory.plan import attempt_budget_mb, plan_tier
from engine.memory.reading import MemoryReading, read_memory
from engine.memory.tiers import TierChoice
from engine.models import Request
from engine.settings import Settings


@dataclass(frozen=True)
class Forecast:
    choice: TierChoice
    width: int
    height: int
    memory: MemoryReading
    budget_mb: float
    duration_s: float  # estimated from the text

    @property
    def predicted_wall_s(self) -> float | None:
        prediction = self.choice.prediction
        return prediction.wall_s(self.duration_s) if prediction else None


def forecast(request: Request, settings: Settings, store: HistoryStore | None = None) -> Forecast:
    memory = read_memory(settings.max_memory_mb)
    choice = plan_tier(request, settings, memory, store)
    width, height = choice.tier.size(request.aspect)
    seconds = estimated_duration_s(request.text)
    return Forecast(choice, width, height, memory, attempt_budget_mb(memory.available_mb), seconds)
