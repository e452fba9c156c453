"""The plan of one generation: decided once, passed down as one value.

The tier, the method chain and the memory each candidate tier is predicted to need are
decided here, from the cost model and the render capacity of this host, and nowhere else.

Policies (TIER_POLICY):
- `measured` (the default): the best tier whose predicted peak fits the render capacity,
  from the first request; lower tiers that fit stay as step-downs for a long wait.
- `seed`: the seed's fixed thresholds on available memory (1 GB, 512 MB), exactly.

The floor: MIN_REQUIRED_MEMORY_MB when set; unset, the cost model's cheapest render (the
emergency render) plus a margin (the seed's 400 MB under the seed policy).
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field, replace

from engine.choices import METHODS, TIERS
from engine.errors import HistoryUnavailable, NotEnoughMemory
from engine.history import HistoryStore
from engine.memory.costs import Cost, CostModel, estimated_duration_s, key_for, learn, learn_speech, load_prior
from engine.memory.ledger import Ledger, Need, attempt_budget_mb
from engine.memory.reading import read_memory
from engine.memory.tiers import SEED_FLOOR_MB, Tier, capped, seed_reason, seed_tier_name, tier
from engine.models import Request
from engine.settings import Settings
from engine.visuals.text import QuoteText

# A reservation is the predicted p95 peak plus this share (at least 16 MB): MoviePy's peak varies
# by up to 11% from run to run (measured in the soak), FFmpeg's by 3%; a small render's by a few MB
# whatever its size (a 49 MB prediction measured 53 to 59 MB on a fresh checkout).
PREDICTION_MARGIN_SHARE = 0.15
PREDICTION_MARGIN_MB = 16.0
HOLD_EXTRA_S = 1.5  # cards, verification and quality around the render itself

log = logging.getLogger(__name__)


def margin_mb(peak_mb: float) -> float:
    return max(PREDICTION_MARGIN_MB, peak_mb * PREDICTION_MARGIN_SHARE)


@dataclass(frozen=True)
class Option:
    """One tier the request may render at, with what its first method is predicted to cost."""

    tier: Tier
    cost: Cost
    duration_s: float

    @property
    def need_mb(self) -> float:
        return round(self.cost.peak_mb + margin_mb(self.cost.peak_mb), 1)

    def need(self) -> Need:
        return Need(self.tier.name, self.need_mb, self.cost.wall_s(self.duration_s) + HOLD_EXTRA_S)


@dataclass(frozen=True)
class Step:
    """One attempt of the chain as planned: which method renders at which tier and size, with what
    of the request it can render (the emergency render: no captions, no motion, at most 60 s)."""

    method: str
    tier: Tier
    size: tuple[int, int]
    captions: bool
    motion: bool
    duration_s: float  # the speech's, cut to the tier's limit
    predicted: Cost


@dataclass(frozen=True)
class Plan:
    request: Request
    quote: QuoteText  # its words and phrases, read once for speech, captions and cards
    policy: str  # "measured" or "seed"
    chain: tuple[str, ...]  # render methods, tried in order
    options: tuple[Option, ...]  # the chosen tier first, then lower ones it may step down to
    reason: str  # why this tier
    seed_tier: str  # what the seed's thresholds would have chosen
    capacity_mb: float  # what one render could hold now, if none were running
    available_mb: float
    duration_s: float  # of the speech: estimated from the text until it is spoken
    model: CostModel = field(repr=False, compare=False)
    emergency: Tier | None = None  # the last resort's tier (480p, at most 60 s)
    too_small: str | None = None  # in a preview: the refusal this request would get now

    @property
    def tier(self) -> Tier:
        return self.options[0].tier

    @property
    def predicted(self) -> Cost:
        return self.options[0].cost

    @property
    def size(self) -> tuple[int, int]:
        return self.tier.size(self.request.aspect)

    def steps(self) -> tuple[Step, ...]:
        """The attempts of the chain, in order, each as it will render."""
        return tuple(self._step(method) for method in self.chain)

    def _step(self, method: str) -> Step:
        used = self.emergency if method == "emergency" and self.emergency is not None else self.tier
        last_resort = method == "emergency"
        captions = self.request.captions and not last_resort
        motion = self.request.motion and method == "moviepy"
        duration = min(self.duration_s, used.max_duration_s or self.duration_s)
        key = key_for(method, used.name, self.request.aspect, captions, motion, duration)
        return Step(method, used, used.size(self.request.aspect), captions, motion, duration, self.model.predict(key))

    def needs(self) -> list[Need]:
        return [option.need() for option in self.options]

    def spoken(self, duration_s: float) -> Plan:
        """The same plan once the speech is made: its real length sets how long renders hold memory."""
        options = tuple(replace(o, duration_s=duration_s) for o in self.options)
        return replace(self, options=options, duration_s=duration_s)

    def stepped_down(self, index: int, why: str) -> Plan:
        """The plan at its `index`th option, as admission granted it."""
        if index == 0:
            return self
        return replace(self, options=self.options[index:], reason=f"{why} (asked: {self.reason})")


def method_chain(request: Request) -> tuple[str, ...]:
    """Methods to try in order. Auto starts at MoviePy only when motion needs it: for a
    still card FFmpeg makes the same video at a fraction of the memory and time."""
    first = request.method
    if first == "auto":
        first = "moviepy" if request.motion else "ffmpeg"
    chain = METHODS[METHODS.index(first) :]
    return chain if request.fallback else chain[:1]


def floor(settings: Settings, model: CostModel) -> tuple[float, str]:
    """The least memory worth trying at all, and who says so."""
    if settings.min_required_memory_mb is not None:
        return float(settings.min_required_memory_mb), "MIN_REQUIRED_MEMORY_MB asks for"
    if settings.tier_policy == "seed":
        return float(SEED_FLOOR_MB), "the seed's floor is"
    cheapest = model.cheapest_mb()
    return round(cheapest + margin_mb(cheapest), 1), "the smallest render needs"


def check_floor(settings: Settings, model: CostModel, capacity_mb: float, headroom_mb: float) -> None:
    """NotEnoughMemory when even the smallest render could never fit here. The derived floor is a
    render's need, set against the render budget; a floor that is set (or the seed's) means
    available memory, as the seed's check did, with the running renders' memory counted as free
    (they give it back: a request that must wait for them is busy, not refused)."""
    needed, who = floor(settings, model)
    derived = settings.min_required_memory_mb is None and settings.tier_policy != "seed"
    have = capacity_mb if derived else headroom_mb
    if have < needed:
        raise NotEnoughMemory(have, needed, who)


def make_plan(
    request: Request, settings: Settings, model: CostModel, capacity_mb: float, available_mb: float, duration_s: float
) -> Plan:
    chain = method_chain(request)

    def option(name: str) -> Option:
        used = tier(name, settings)
        key = key_for(chain[0], name, request.aspect, request.captions, request.motion, duration_s)
        return Option(used, model.predict(key), duration_s)

    seed = seed_tier_name(available_mb)
    quote = QuoteText.of(request.text, request.author)
    plan = Plan(request, quote, settings.tier_policy, chain, (), "", seed, capacity_mb, available_mb, duration_s, model,
                tier("emergency", settings))  # fmt: skip
    if request.tier != "auto":
        return replace(plan, options=(option(request.tier),), reason=f"forced by the request ({request.tier})")
    if settings.tier_policy == "seed":
        return replace(plan, options=(option(seed),), reason=f"seed policy: {seed_reason(available_mb)}")
    every = [option(name) for name in TIERS]
    fitting = [o for o in every if o.need_mb <= capacity_mb]
    if not fitting:
        lowest = every[-1]
        why = (
            f"measured policy: no tier fits the {capacity_mb:.0f} MB render budget ({chain[0]} at {lowest.tier.name} "
            f"needs {lowest.need_mb:.0f} MB); the lowest is tried, with fallbacks"
        )
        return replace(plan, options=(lowest,), reason=why)
    best = fitting[0]
    skipped = [o for o in every if o.tier.short_side > best.tier.short_side]
    why = (
        f"measured policy: {chain[0]} at {best.tier.name} is predicted to peak at {best.cost.peak_mb:.0f} MB "
        f"({best.cost.describe()}), which fits the {capacity_mb:.0f} MB render budget"
    )
    if skipped:
        why += "; " + ", ".join(f"{o.tier.name} would need {o.need_mb:.0f} MB" for o in skipped)
    if capped(best.tier):
        why += f"; capped at {best.tier.short_side}p by MAX_RESOLUTION_HEIGHT"
    return replace(plan, options=tuple(fitting), reason=why)


def cost_model(store: HistoryStore | None) -> CostModel:
    """The shipped prior, with the cells this host's history has measured often enough laid over it
    (the prior alone when the history cannot be read: planning does not need it)."""
    prior = load_prior()
    if store is None:
        return prior
    try:
        host = socket.gethostname()
        costs, speech = store.recent_cost_rows(host), store.recent_speech_peaks(host)
    except HistoryUnavailable:
        log.exception("could not read the history; planning from the shipped prior")
        return prior
    rows = [
        (key_for(method, tier_name, aspect, captions, motion, seconds), peak_mb,
         wall_s / seconds if status == "ok" else None)
        for method, tier_name, aspect, captions, motion, peak_mb, wall_s, seconds, status in costs
    ]  # fmt: skip
    return prior.with_learned(learn(rows), learn_speech(speech))


def preview(
    request: Request, settings: Settings, store: HistoryStore | None = None, ledger: Ledger | None = None
) -> Plan:
    """What a request would get if it ran now, its speech length estimated from its text."""
    reading = read_memory(settings.max_memory_mb)
    headroom = ledger.headroom_mb() if ledger is not None else reading.available_mb
    capacity = attempt_budget_mb(headroom)
    model = cost_model(store)
    plan = make_plan(request, settings, model, capacity, reading.available_mb, estimated_duration_s(request.text))
    try:
        check_floor(settings, model, capacity, headroom)
    except NotEnoughMemory as refusal:
        return replace(plan, too_small=str(refusal))
    return plan
