"""Room for the neural voice. Piper speaks in a process of its own that holds about 90 MB, so it
is admitted like a render: its predicted peak (the cost model's, plus the prediction margin) is
reserved in the host's ledger while it speaks, and the watchdog holds it to that. When there is no
room, or none comes within VOICE_WAIT_S, the chain goes on to eSpeak NG (a few MB), with the reason."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

from engine.errors import Busy, SpeechFailed
from engine.memory.costs import CHARS_PER_S, CostModel
from engine.memory.ledger import Ledger, Need, Waiting, attempt_budget_mb
from engine.memory.plan import margin_mb
from engine.memory.reading import read_memory
from engine.speech.piper import Reserve

VOICE_WAIT_S = 10.0  # eSpeak NG now beats Piper later: a request does not queue long for its voice
UNKNOWN_VOICE_MB = 250.0  # a prior without Piper's figure (it was measured at 175 MB)
# The voice's first use on a host saves it for mapping, loading the whole shipped model for that
# (engine.speech.piper_child): measured at 111.5 MB, more than it needs to speak once saved.
FIRST_USE_MB = 115.0
LOAD_S, REAL_TIME_FACTOR = 1.0, 0.07  # for the ledger's expected wait, measured with margin


def voice_need(model: CostModel, text_chars: int, saved: bool = True) -> Need:
    """What the voice reserves: its learned or measured peak, or what saving it takes when it is
    not `saved` yet."""
    peak = model.speech_mb.get("piper", UNKNOWN_VOICE_MB)
    if not saved:
        peak = max(peak, FIRST_USE_MB)
    hold = LOAD_S + REAL_TIME_FACTOR * text_chars / CHARS_PER_S
    return Need("the neural voice", round(peak + margin_mb(peak), 1), round(hold, 1))


def voice_room(
    needed: Callable[[], Need],
    ledger: Ledger | None,
    max_memory_mb: int | None,
    on_wait: Callable[[Waiting], None] | None = None,
) -> Reserve:
    """Piper's turn for memory: a context that gives the watchdog's budget in MB while the voice
    speaks, or raises SpeechFailed saying why it may not. `needed` is asked only then."""

    @contextmanager
    def reserve() -> Iterator[float]:
        need = needed()
        if ledger is None:
            budget = attempt_budget_mb(read_memory(max_memory_mb).available_mb)
            if budget < need.need_mb:
                raise SpeechFailed(_no_room(budget, need))
            yield budget
            return
        capacity = ledger.capacity_mb()
        if capacity < need.need_mb:
            raise SpeechFailed(_no_room(capacity, need))
        with ExitStack() as held:
            try:
                grant = held.enter_context(ledger.admit([need], on_wait, max_wait_s=VOICE_WAIT_S))
            except Busy as busy:
                raise SpeechFailed(f"no room for the neural voice within {VOICE_WAIT_S:.0f} s ({busy})") from None
            yield grant.budget_mb

    return reserve


def _no_room(have_mb: float, need: Need) -> str:
    return f"not enough memory for the neural voice ({have_mb:.0f} MB for it, it needs {need.need_mb:.0f} MB)"
