"""End to end: the whole `generate` command as a user runs it (speech, mastering, cards, render,
checks, delivery), measured from outside: its wall time and the peak of its whole process tree,
Python included, sampled every 10 ms. Beside it, in alternating pairs, a plain MoviePy render of
the same picture and sound, measured the same way; ratios are plain MoviePy's figure over ours.

Then what each feature costs on the FFmpeg path: the same command with one feature added.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from engine.memory.sampler import TreeSampler
from engine.render.spec import RenderSpec
from engine.speech.base import SpeechOrder
from engine.speech.espeak import EspeakEngine
from engine.visuals.card import draw_card

ROOT = Path(__file__).resolve().parents[1]
# (name, size of the plain render's card, the command's options)
CASES = (
    ("still 16:9", (1920, 1080), ["--aspect", "16:9", "--no-captions"]),
    ("phrase captions 9:16", (1080, 1920), ["--preset", "reels", "--captions", "--caption-style", "phrase"]),
    ("word captions 9:16", (1080, 1920), ["--preset", "reels", "--captions", "--caption-style", "word"]),
)
FEATURES = (
    ("Piper voice", ["--tts", "piper"]),
    ("music bed", ["--music", "pad"]),
    ("subtitles", ["--subtitles"]),
    ("word captions", ["--captions", "--caption-style", "word"]),
)
TARGETS = {"ffmpeg": (15.0, 6.0)}  # x faster, x less memory than plain MoviePy, end to end


def measure_tree(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(peak MB of the whole tree, wall s, stdout) of one command."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    with TreeSampler(proc.pid, interval_s=0.01) as sampler:
        out, err = proc.communicate()
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[2:5])}... failed: {err.decode(errors='replace')[-300:]}")
    return round(sampler.peak_mb, 1), round(wall, 3), out.decode()


def end_to_end(text: str, folder: Path, data_dir: Path, runs: int, progress=print, quick: bool = False) -> dict:
    """Every case with the FFmpeg and MoviePy methods against plain MoviePy; then the features.
    `quick`: the still card with the FFmpeg method only, no features (what the test suite runs)."""
    env = {**os.environ, "DATA_DIR": str(data_dir), "TTS_ENGINE": "espeak", "PYTHONPATH": str(ROOT)}
    speech = EspeakEngine().synthesize(SpeechOrder(text, "en", folder))
    rows = []
    for name, size, options in CASES[:1] if quick else CASES:
        card = draw_card(text, "", size, folder / f"e2e-{size[0]}x{size[1]}.png")
        plain = _plain_command(card, speech.path, speech.duration_s, size, folder)
        for method in ("ffmpeg",) if quick else ("ffmpeg", "moviepy"):
            ours_argv = _generate(text, folder, [*options, "--tier", "high", "--method", method, "--no-fallback"])
            ours, base = [], []
            for _ in range(runs):  # alternating pairs: the machine's drift falls on both
                ours.append(measure_tree(ours_argv, env)[:2])
                base.append(measure_tree(plain, env)[:2])
            row = _row(name, method, ours, base)
            progress(
                f"e2e    {name:22} {method:8} {row['peak_mb']:7.1f} MB {row['wall_s']:6.2f} s   plain "
                f"{row['plain_peak_mb']:6.1f} MB {row['plain_wall_s']:6.2f} s   {row['faster_x']}x, "
                f"{row['less_memory_x']}x less"
            )
            rows.append(row)
    found = [] if quick else features(text, folder, env, runs, progress)
    return {"end_to_end": rows, "end_to_end_targets": _targets(rows), "features": found}


def features(text: str, folder: Path, env: dict[str, str], runs: int, progress=print) -> list[dict]:
    """What each feature adds to the FFmpeg path at 1080p 16:9, medians of `runs`."""
    base_options = ["--aspect", "16:9", "--no-captions", "--tier", "high", "--method", "ffmpeg", "--no-fallback"]
    found: list[dict] = []
    for name, options in (("none", []), *FEATURES):
        argv = _generate(text, folder, [*base_options, *options])
        measured = [measure_tree(argv, env) for _ in range(runs)]
        stages = json.loads(measured[-1][2]).get("stage_s", {})
        row = {"feature": name, "peak_mb": statistics.median(m[0] for m in measured),
               "wall_s": round(statistics.median(m[1] for m in measured), 3), "stage_s": stages}  # fmt: skip
        if found:
            row |= {"extra_s": round(row["wall_s"] - found[0]["wall_s"], 3),
                    "extra_mb": round(row["peak_mb"] - found[0]["peak_mb"], 1)}  # fmt: skip
        progress(f"e2e    feature {name:14} {row['peak_mb']:7.1f} MB {row['wall_s']:6.2f} s")
        found.append(row)
    return found


def _generate(text: str, folder: Path, options: list[str]) -> list[str]:
    out = folder / "e2e.mp4"
    return [sys.executable, "-m", "engine", "generate", text, "--tts", "espeak", "--out", str(out), "--json", *options]


def _plain_command(card: Path, audio: Path, duration_s: float, size: tuple[int, int], folder: Path) -> list[str]:
    spec = RenderSpec(
        method="plain", card_path=str(card), audio_path=str(audio), out_path=str(folder / "e2e-plain.mp4"),
        temp_dir=str(folder), width=size[0], height=size[1], fps=24, video_kbps=800, audio_kbps=128,
        duration_s=duration_s,
    )  # fmt: skip
    spec_file = folder / f"e2e-plain-{size[0]}x{size[1]}.json"
    spec_file.write_text(spec.to_json())
    return [sys.executable, "-m", "benchmarks.plain_moviepy", str(spec_file)]


def _row(name: str, method: str, ours: list[tuple[float, float]], base: list[tuple[float, float]]) -> dict:
    peak, wall = statistics.median(m[0] for m in ours), statistics.median(m[1] for m in ours)
    plain_peak, plain_wall = statistics.median(m[0] for m in base), statistics.median(m[1] for m in base)
    return {"case": name, "method": method, "peak_mb": peak, "wall_s": round(wall, 3), "plain_peak_mb": plain_peak,
            "plain_wall_s": round(plain_wall, 3), "faster_x": round(plain_wall / wall, 1),
            "less_memory_x": round(plain_peak / peak, 2)}  # fmt: skip


def _targets(rows: list[dict]) -> list[dict]:
    found = []
    for row in rows:
        if row["method"] in TARGETS and row["case"] in ("still 16:9", "phrase captions 9:16"):
            speed, memory = TARGETS[row["method"]]
            met = row["faster_x"] >= speed and row["less_memory_x"] >= memory
            found.append({**row, "target_faster_x": speed, "target_less_memory_x": memory, "met": met})
    return found


def end_to_end_lines(report: dict) -> list[str]:
    lines = [f"{'end to end':24}{'method':9}{'peak MB':>8}{'wall s':>8}{'plain MB':>10}{'plain s':>9}{'faster':>8}"
             f"{'less mem':>9}"]  # fmt: skip
    for r in report.get("end_to_end", []):
        lines.append(
            f"{r['case']:24}{r['method']:9}{r['peak_mb']:>8.1f}{r['wall_s']:>8.2f}{r['plain_peak_mb']:>10.1f}"
            f"{r['plain_wall_s']:>9.2f}{r['faster_x']:>7.1f}x{r['less_memory_x']:>8.2f}x"
        )
    for t in report.get("end_to_end_targets", []):
        lines.append(
            f"target end to end {t['case']} {t['method']}: {t['faster_x']}x faster (target {t['target_faster_x']}x), "
            f"{t['less_memory_x']}x less memory (target {t['target_less_memory_x']}x): "
            f"{'met' if t['met'] else 'MISSED'}"
        )
    for f in report.get("features", []):
        extra = f" (+{f['extra_s']:.2f} s, {f['extra_mb']:+.1f} MB)" if "extra_s" in f else ""
        lines.append(f"feature {f['feature']:14} {f['peak_mb']:7.1f} MB {f['wall_s']:6.2f} s{extra}")
    return lines
