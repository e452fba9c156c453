"""The offline voices side by side on the bench quotes: time, real-time factor (seconds of work per
second of speech), peak memory, and what mastering the result costs.

gTTS is left out: it is a network round trip, not work done here. eSpeak NG runs inside the
calling process (ctypes), so its peak is measured in a child of its own, as `calibrate` does;
Piper always runs in a child of its own under the watchdog, which reports that child's peak.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from engine.audio.master import master
from engine.memory.calibrate import speech_cost
from engine.memory.ledger import Ledger, Need
from engine.speech.base import Speech, SpeechOrder
from engine.speech.espeak import EspeakEngine
from engine.speech.piper import PiperEngine
from engine.visuals.text import QuoteText

ENGINES = ("espeak", "piper")


def speech_engines(
    cases: list[dict], folder: Path, runs: int, progress, ledger: Ledger | None, models_dir: Path
) -> list[dict]:
    """One row per quote and engine: medians over `runs`; Piper as this host saved it (`models_dir`)."""

    @contextmanager
    def room() -> Iterator[float]:  # measured, never cut short; still counted in the host's ledger
        with ledger.admit([Need("bench piper", 300.0, 20)]) if ledger is not None else nullcontext():
            yield 10_000.0

    rows = []
    for case in cases:
        text = case["text"]
        order = SpeechOrder(text, "en", folder, QuoteText.of(text).phrase_spans())
        for name in ENGINES:
            engine = EspeakEngine() if name == "espeak" else PiperEngine(room, models_dir)
            if isinstance(engine, PiperEngine):
                engine.save_voice(folder)
            times, peaks, masters, speech = [], [], [], None
            for _ in range(runs):
                started = time.perf_counter()
                speech = engine.synthesize(order)
                times.append(time.perf_counter() - started)
                peaks.append(speech.peak_rss_mb or 0.0)
                masters.append(_master_s(speech, folder))
            assert speech is not None
            if name == "espeak":  # in this process: measured apart, in a child of its own
                own = folder / f"espeak-{case['name']}"
                own.mkdir()
                peaks = [speech_cost("espeak", text, own)["peak_mb"]]
            wall = statistics.median(times)
            row = {
                "quote": case["name"], "chars": len(text), "engine": name, "speech_s": round(speech.duration_s, 2),
                "wall_s": round(wall, 2), "rtf": round(wall / speech.duration_s, 3),
                "peak_mb": round(max(peaks), 1), "master_s": round(statistics.median(masters), 2), "runs": runs,
            }  # fmt: skip
            speech.path.unlink(missing_ok=True)
            progress(
                f"speech {case['name']:8} {name:7} {row['wall_s']:6.2f} s for {row['speech_s']:6.1f} s "
                f"(RTF {row['rtf']:.3f}) {row['peak_mb']:6.1f} MB, mastered in {row['master_s']:.2f} s"
            )
            rows.append(row)
    return rows


def _master_s(speech: Speech, folder: Path) -> float:
    out = folder / "mastered.wav"
    started = time.perf_counter()
    master(speech, out)
    spent = time.perf_counter() - started
    out.unlink()
    return spent


def speech_lines(rows: list[dict]) -> list[str]:
    return [
        f"speech {r['quote']} ({r['chars']} chars) {r['engine']}: {r['wall_s']} s for {r['speech_s']} s of speech "
        f"(RTF {r['rtf']}), peak {r['peak_mb']} MB, mastering {r['master_s']} s"
        for r in rows
    ]
