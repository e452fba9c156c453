"""The speech chain: gTTS first, the offline eSpeak NG voice when it fails."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from engine.choices import TTS_CHOICES
from engine.errors import InvalidInput, SpeechFailed
from engine.speech.base import Speech, SpeechEngine, WordTiming
from engine.speech.espeak import EspeakEngine
from engine.speech.gtts_engine import GttsEngine

__all__ = ["Speech", "SpeechEngine", "WordTiming", "engines_for", "languages_for", "speak"]

log = logging.getLogger(__name__)


def engines_for(choice: str, tld: str = "com", slow: bool = False, timeout_s: float = 10.0) -> list[SpeechEngine]:
    """The engines to try, in order: "auto" is gTTS then offline; a named engine runs alone."""
    gtts = GttsEngine(tld=tld, slow=slow, timeout_s=timeout_s)
    chains: dict[str, list[SpeechEngine]] = {"auto": [gtts, EspeakEngine()], "gtts": [gtts], "espeak": [EspeakEngine()]}
    if choice not in chains:
        raise InvalidInput(f"speech engine {choice!r} is not offered; choose one of: {', '.join(TTS_CHOICES)}")
    return chains[choice]


def speak(
    text: str, lang: str, engines: Sequence[SpeechEngine], out_dir: Path, phrases: list[tuple[int, int]] | None = None
) -> Speech:
    """Speak with the first engine that succeeds; the result says why earlier ones were passed over."""
    reasons: list[str] = []
    last: Exception | None = None
    for engine in engines:
        try:
            speech = engine.synthesize(text, lang, out_dir, phrases)
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
    from gtts.lang import tts_langs  # a static table: no network

    return dict(sorted(tts_langs().items(), key=lambda item: item[1]))
