"""`python -m engine calibrate`: measure the cost model's prior on this machine and write it.

Every cell (method, tier, aspect, captions, motion, duration band) is a real generation
with that tier and method forced and no fallback, run `runs` times; a cell keeps the p95
(with so few runs, the largest) peak of its render tree and the median time per second of
video. Each speech engine's peak is the extra memory of a fresh process while it speaks.

Rerun it when the renderer changes (a method, its x264 or ffmpeg settings, the frame sizes,
the ffmpeg build) or for another kind of machine, and commit the file it writes.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path

from engine.choices import ASPECTS, TIERS
from engine.memory.costs import BANDS_S, PRIOR_FILE, CostModel, estimated_duration_s, key_for, load_prior, p95
from engine.memory.ledger import Ledger, Need
from engine.memory.sampler import TreeSampler
from engine.models import Request
from engine.render.spec import encoder_threads
from engine.settings import Settings

_MEDIUM = (
    "The only way to do great work is to love what you do. If you haven't found it yet, keep looking. "
    "Don't settle. As with all matters of the heart, you'll see"
)
_LONG = (
    "Twenty years from now you will be more disappointed by the things that you didn't do than by the ones you "
    "did do. So throw off the bowlines. Sail away from the safe harbor. Catch the trade winds in your sails. "
    "Explore. Dream. Discover. It is not the critic who counts; not the man who points out how the strong man "
    "stumbles, or where the doer of deeds could have done them better. The credit belongs to the man who is "
    "actually in the arena, whose face is marred by dust and sweat and blood; who strives valiantly; who errs again."
)
# One text per duration band (offline speech: about 9 s and 32 s).
TEXTS = (_MEDIUM, _LONG)
LONGEST = " ".join([_LONG] * 4)[:2000].rsplit(" ", 1)[0]  # MAX_TEXT_CHARS's default, for the neural voice
# (method, captions, motion): what each method can render.
VARIANTS = (
    ("moviepy", False, False), ("moviepy", True, False), ("moviepy", False, True), ("moviepy", True, True),
    ("ffmpeg", False, False), ("ffmpeg", True, False), ("emergency", False, False),
)  # fmt: skip


def calibrate(
    settings: Settings,
    quick: bool = False,
    runs: int | None = None,
    progress: Callable[[str], None] = print,
    ledger: Ledger | None = None,
) -> dict:
    """Measure every cell and speech engine; the prior as a JSON-able dict. `quick` measures
    the FFmpeg and emergency methods at 16:9 in the shortest band only, once (for tests). With
    `ledger`, each generation first reserves what the current prior predicts for it in the host's
    memory ledger (so the app's renders make room), and is never cut short."""
    from engine.pipeline import generate  # the pipeline imports the plan, which imports this package

    runs = runs or (1 if quick else 2)
    texts = TEXTS[:1] if quick else TEXTS
    variants = [v for v in VARIANTS if v[0] != "moviepy"] if quick else VARIANTS
    aspects = ["16:9"] if quick else list(ASPECTS)
    tiers = ["high"] if quick else list(TIERS)
    folder = Path(tempfile.mkdtemp(prefix="calibrate-"))
    local = replace(settings, data_dir=folder, tts_engine="espeak", min_required_memory_mb=0)
    started = time.monotonic()
    cells = []
    try:
        for text in texts:
            for method, captions, motion in variants:
                for aspect in aspects:
                    for tier_name in ["high"] if method == "emergency" else tiers:
                        request = Request(text, tier=tier_name, method=method, fallback=False, aspect=aspect,
                                          captions=captions, motion=motion, tts="espeak")  # fmt: skip
                        measured = []
                        current = load_prior().predict(
                            key_for(method, tier_name, aspect, captions, motion, estimated_duration_s(text))
                        )
                        turn = [Need(f"calibrate {method} {tier_name}", current.peak_mb * 1.2, 60)]
                        for _ in range(runs):
                            with ledger.admit(turn) if ledger is not None else nullcontext():
                                result = generate(request, local, model=CostModel({}))
                            attempt = result.attempts[-1]
                            measured.append((attempt.peak_rss_mb, attempt.wall_s, result.duration_s))
                            assert result.output is not None  # generate() returns only a delivered video
                            result.output.unlink()
                        seconds = measured[0][2]
                        key = key_for(method, tier_name, aspect, captions, motion, seconds)
                        cell = {
                            **key.as_dict(), "video_s": round(seconds, 2), "runs": runs,
                            "peak_mb": round(p95(m[0] for m in measured), 1),
                            "s_per_video_s": round(statistics.median(m[1] / m[2] for m in measured), 4),
                        }  # fmt: skip
                        cells.append(cell)
                        progress(
                            f"{cell['band']:9} {method:9} {key.tier:9} {aspect:5} captions={captions!s:5} "
                            f"motion={motion!s:5} {cell['peak_mb']:7.1f} MB {cell['s_per_video_s']:.4f} s/s"
                        )
        speech = [speech_cost(name, texts[-1], folder) for name in ("espeak", "gtts")]
        speech.append(_piper_cost(folder, 1 if quick else 3, ledger, settings.models_dir))
        for row in speech:
            progress(f"speech {row['engine']:7} {row['peak_mb']:7.1f} MB")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "written_by": "python -m engine calibrate" + (" --quick" if quick else ""),
        "measured_at": time.strftime("%Y-%m-%d"),
        "minutes": round((time.monotonic() - started) / 60, 1),
        "machine": {"cpus": os.cpu_count(), "encoder_threads": encoder_threads(), "python": platform.python_version()},
        "bands_s": list(BANDS_S),
        "render": cells,
        "speech": speech,
    }


def write_prior(prior: dict, path: Path = PRIOR_FILE) -> Path:
    partial = path.with_name(f".{path.name}.part")
    partial.write_text(json.dumps(prior, indent=1) + "\n")
    os.replace(partial, path)
    return path


# A fresh interpreter loads what the engine loads, says so, and speaks when told: the speech
# engine's cost is its peak over that baseline.
_SPEAKER = """
import sys
from pathlib import Path
from engine.speech.base import SpeechOrder
from engine.speech.espeak import EspeakEngine
from engine.render import ffmpeg
engine, text, folder = sys.argv[1], sys.argv[2], Path(sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()
if engine == "espeak":
    EspeakEngine().synthesize(SpeechOrder(text, "en", folder))
else:  # gTTS: what this machine does with its MP3 (the download itself is on Google's side)
    ffmpeg.run(["-i", str(folder / "speech.mp3"), "-ac", "1", "-ar", "24000", str(folder / "decoded.wav")])
print("done", flush=True)
"""


def speech_cost(engine: str, text: str, folder: Path) -> dict:
    """One engine speaking `text` in a child of its own: its peak above the child's idle baseline."""
    own = folder / f"speech-{engine}"
    own.mkdir()
    if engine == "gtts":  # an MP3 of the longest text, as gTTS delivers it
        from engine.render import ffmpeg
        from engine.speech.base import SpeechOrder
        from engine.speech.espeak import EspeakEngine

        wav = EspeakEngine().synthesize(SpeechOrder(text, "en", own)).path
        ffmpeg.run(["-i", str(wav), "-c:a", "libmp3lame", "-b:a", "32k", str(own / "speech.mp3")])
    root = str(Path(__file__).resolve().parents[2])
    child = subprocess.Popen(
        [sys.executable, "-c", _SPEAKER, engine, text, str(own)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, env={**os.environ, "PYTHONPATH": root},
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdin is not None
        child.stdout.readline()
        sampler = TreeSampler(child.pid, interval_s=0.01)
        baseline = sampler.sample()
        with sampler:
            child.stdin.write("go\n")
            child.stdin.flush()
            child.stdout.readline()
    finally:
        child.kill()
        child.wait()
    return {"engine": engine, "peak_mb": round(max(0.0, sampler.peak_mb - baseline), 1), "runs": 1}


def _piper_cost(folder: Path, runs: int, ledger: Ledger | None, models_dir: Path) -> dict:
    """The neural voice's peak: its own process, speaking the longest quote allowed (its memory
    follows the longest piece it speaks, and a longer quote has more pieces to find it in)."""
    from engine.speech.base import SpeechOrder
    from engine.speech.piper import PiperEngine
    from engine.visuals.text import QuoteText

    text = LONGEST
    own = folder / "speech-piper"
    own.mkdir()

    @contextmanager
    def room() -> Iterator[float]:
        with ledger.admit([Need("calibrate piper", 300.0, 20)]) if ledger is not None else nullcontext():
            yield 1000.0  # measured, not limited

    voice = PiperEngine(room, models_dir)
    voice.save_voice(own)
    peaks = []
    for _ in range(runs):
        speech = voice.synthesize(SpeechOrder(text, "en", own, QuoteText.of(text).phrase_spans()))
        peaks.append(speech.peak_rss_mb)
        speech.path.unlink()
    return {"engine": "piper", "peak_mb": round(p95(peaks), 1), "runs": runs}


def describe(prior: dict) -> str:
    return (
        f"{len(prior['render'])} render cells and {len(prior['speech'])} speech engines, "
        f"measured in {prior['minutes']} minutes"
    )
