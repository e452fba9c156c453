"""What every speech engine returns, and the interface they share."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class WordTiming:
    """When a word (or, from gTTS, a whole phrase) is spoken; `position` is its first
    character's offset in the spoken text, which ties the timing to the card's text."""

    text: str
    start_s: float
    end_s: float
    position: int = -1


@dataclass(frozen=True)
class Speech:
    path: Path  # a 16-bit PCM WAV file
    duration_s: float
    engine: str  # "gtts" or "espeak"
    words: tuple[WordTiming, ...] = ()
    fallback_reason: str | None = None  # why an earlier engine was passed over


class SpeechEngine(Protocol):
    name: str

    def synthesize(self, text: str, lang: str, out_dir: Path, phrases: list[tuple[int, int]] | None = None) -> Speech:
        """Speak `text` into a WAV file in `out_dir`; SpeechFailed or InvalidInput on failure.
        `phrases` (character spans) asks for timings per phrase where the engine has no word events."""
        ...


def wav_duration_s(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / float(wav.getframerate())


def join_wavs(pieces: list[Path], out: Path) -> Path:
    """Concatenate WAV files of the same format into `out`."""
    with wave.open(str(out), "wb") as joined:
        for index, piece in enumerate(pieces):
            with wave.open(str(piece), "rb") as part:
                if index == 0:
                    joined.setparams(part.getparams())
                joined.writeframes(part.readframes(part.getnframes()))
    return out
