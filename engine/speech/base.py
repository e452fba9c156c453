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


# Speaking rate against normal, per choice (engine.choices.SPEEDS); each engine turns it into its own setting.
RATES = {"slower": 0.8, "normal": 1.0, "faster": 1.2}


@dataclass(frozen=True)
class SpeechOrder:
    """What to speak, and how: the quote as read once by the plan (its phrases), where to write."""

    text: str
    lang: str
    out_dir: Path
    phrases: tuple[tuple[int, int], ...] = ()  # character spans of the quote's phrases
    timed: bool = False  # captions need each phrase's timing
    speed: str = "normal"

    @property
    def rate(self) -> float:
        return RATES[self.speed]


@dataclass(frozen=True)
class Speech:
    path: Path  # a 16-bit PCM WAV file
    duration_s: float
    engine: str  # "gtts", "piper" or "espeak"
    words: tuple[WordTiming, ...] = ()
    fallback_reason: str | None = None  # why an earlier engine was passed over
    peak_rss_mb: float = 0.0  # of a voice that speaks in a child process of its own (Piper)
    saved_voice: bool = False  # Piper saved its voice for this host first: the peak is that of saving


class SpeechEngine(Protocol):
    name: str

    def synthesize(self, order: SpeechOrder) -> Speech:
        """Speak the order's text into a WAV file in its folder; SpeechFailed or InvalidInput on failure."""
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
