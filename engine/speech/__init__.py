"""The speech chain: gTTS online, then the neural Piper voice, then eSpeak NG offline."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from engine.choices import TTS_CHOICES
from engine.errors import InvalidInput, SpeechFailed
from engine.memory.watchdog import OnSample
from engine.speech.base import Speech, SpeechEngine, SpeechOrder, WordTiming
from engine.speech.espeak import EspeakEngine
from engine.speech.gtts_engine import GttsEngine
from engine.speech.piper import PiperEngine, Reserve

__all__ = ["Speech", "SpeechEngine", "SpeechOrder", "WordTiming", "engines_for", "languages_for", "speak"]

log = logging.getLogger(__name__)


def engines_for(
    choice: str,
    reserve: Reserve,
    models_dir: Path,
    tld: str = "com",
    timeout_s: float = 10.0,
    on_sample: OnSample | None = None,
) -> list[SpeechEngine]:
    """The engines to try, in order: "auto" is gTTS, then Piper, then eSpeak NG; "piper" keeps
    eSpeak NG behind it (an offline voice for an offline voice, when memory does not allow the
    neural one); gTTS and eSpeak NG named alone run alone. `reserve` is Piper's turn for memory;
    `models_dir` where it keeps its saved voice (DATA_DIR's)."""
    gtts, piper = GttsEngine(tld=tld, timeout_s=timeout_s), PiperEngine(reserve, models_dir, on_sample)
    chains: dict[str, list[SpeechEngine]] = {
        "auto": [gtts, piper, EspeakEngine()], "gtts": [gtts], "piper": [piper, EspeakEngine()],
        "espeak": [EspeakEngine()],
    }  # fmt: skip
    if choice not in chains:
        raise InvalidInput(f"speech engine {choice!r} is not offered; choose one of: {', '.join(TTS_CHOICES)}")
    return chains[choice]


def speak(order: SpeechOrder, engines: Sequence[SpeechEngine]) -> Speech:
    """Speak with the first engine that succeeds; the result says why earlier ones were passed over."""
    reasons: list[str] = []
    last: Exception | None = None
    for engine in engines:
        try:
            speech = engine.synthesize(order)
        except (SpeechFailed, InvalidInput) as exc:
            log.warning("speech engine %s failed: %s", engine.name, exc)
            reasons.append(f"{engine.name}: {exc}")
            last = exc
            continue
        return replace(speech, fallback_reason="; ".join(reasons) or None)
    if isinstance(last, InvalidInput):
        raise InvalidInput("; ".join(reasons))  # every engine refused the request itself
    hint = " Choose the auto speech engine to fall back to the offline voice." if len(engines) == 1 else ""
    raise SpeechFailed("no speech could be made: " + "; ".join(reasons) + "." + hint)


def languages_for(choice: str) -> dict[str, str]:
    """Language codes the chosen engine offers, with a readable name (auto: gTTS's list)."""
    if choice == "espeak":
        from engine.speech.espeak import languages

        return {code: code for code in languages()}
    if choice == "piper":
        return {"en": "English", "en-us": "English (US)", "en-gb": "English (UK, spoken with a US voice)"}
    from gtts.lang import tts_langs  # a static table: no network

    return dict(sorted(tts_langs().items(), key=lambda item: item[1]))
