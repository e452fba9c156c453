"""The tuning sweep: one quote rendered at every tier with every method, side by side.

Speech is made once (offline, so every render hears the same audio); each cell records
memory, time, size and picture quality, and keeps a frame of its video to compare by eye.
The benchmark measures its cells the same way.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from engine.memory.tiers import tier
from engine.render import ffmpeg
from engine.render.isolation import run_isolated
from engine.render.job import RenderJob, encoder_threads
from engine.render.quality import measure
from engine.settings import Settings
from engine.speech.espeak import EspeakEngine
from engine.visuals.card import draw_card

NO_LIMIT_MB = 1_000_000.0


@dataclass(frozen=True)
class Cell:
    quote: str
    chars: int
    tier: str
    method: str  # "plain" is the plain MoviePy baseline
    width: int
    height: int
    duration_s: float
    runs: int
    peak_rss_mb: float  # medians over the runs
    wall_s: float
    size_bytes: int
    ssim: float | None
    psnr_db: float | None
    faster_x: float | None = None  # plain MoviePy's time over this method's
    less_memory_x: float | None = None


def scratch_root(settings: Settings) -> Path:
    settings.temp_dir.mkdir(parents=True, exist_ok=True)
    return settings.temp_dir


def sweep(text: str, author: str, settings: Settings, frames_dir: Path, progress=print) -> list[tuple[Cell, Path]]:
    """Render one quote at every tier and method (one run each, speech made once); each
    cell with a frame of its video, saved in `frames_dir` for comparing by eye."""
    frames_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="sweep-", dir=scratch_root(settings)))
    case = {"name": "sweep", "text": text, "author": author}
    try:
        speech = EspeakEngine().synthesize(text, "en", folder)
        done = []
        for tier_name, method in [*((t, m) for t in ("high", "medium", "low") for m in ("moviepy", "ffmpeg")),
                                  ("emergency", "emergency")]:  # fmt: skip
            frame = frames_dir / f"{tier_name}-{method}.jpg"
            cell = measure_cell(case, tier_name, method, speech, 1, folder, settings, keep_frame=frame)
            progress(f"{tier_name:9} {method:9} {cell.peak_rss_mb:7.1f} MB {cell.wall_s:6.2f} s")
            done.append((cell, frame))
        return done
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure_cell(
    case: dict, tier_name: str, method: str, speech, runs: int, folder: Path, settings: Settings,
    keep_frame: Path | None = None, child: str = "engine.render.child",
) -> Cell:  # fmt: skip
    used = tier(tier_name, settings)
    width, height = used.size("16:9")
    card = draw_card(case["text"], case.get("author", ""), (width, height), folder / f"card-{width}x{height}.png")
    duration = min(speech.duration_s, used.max_duration_s or speech.duration_s)
    measured, quality = [], None
    for attempt in range(runs):
        out = folder / f"{method}-{tier_name}-{attempt}.mp4"
        job = RenderJob(
            method=method, card_path=str(card), audio_path=str(speech.path), out_path=str(out), temp_dir=str(folder),
            width=width, height=height, fps=used.fps, video_kbps=used.video_kbps, audio_kbps=used.audio_kbps,
            duration_s=round(duration, 3), threads=encoder_threads(),
        )  # fmt: skip
        run = run_isolated(job, NO_LIMIT_MB, child=child)
        if run.status != "ok":
            raise RuntimeError(f"bench {method} at {tier_name} failed: {run.error}")
        measured.append((run.peak_rss_mb, run.wall_s, out.stat().st_size))
        if quality is None:
            quality = measure(out, card, min(1.0, duration / 2))
            if keep_frame is not None:
                at = f"{min(1.0, duration / 2):.3f}"
                ffmpeg.run(["-ss", at, "-i", str(out), "-frames:v", "1", "-q:v", "3", str(keep_frame)])
        out.unlink()
    return Cell(
        quote=case["name"], chars=len(case["text"]), tier=tier_name, method=method, width=width, height=height,
        duration_s=round(duration, 2), runs=runs,
        peak_rss_mb=round(statistics.median(m[0] for m in measured), 1),
        wall_s=round(statistics.median(m[1] for m in measured), 3),
        size_bytes=int(statistics.median(m[2] for m in measured)),
        ssim=quality.ssim if quality else None, psnr_db=quality.psnr_db if quality else None,
    )  # fmt: skip


def cell_lines(cells: list[dict]) -> list[str]:
    """A text table of cells (as dicts), one line each under a header."""
    lines = [
        f"{'quote':7}{'chars':>6} {'tier':10}{'method':10}{'size':>10}{'video s':>9}{'peak MB':>9}{'wall s':>8}"
        f"{'MB file':>9}{'SSIM':>7}{'PSNR':>7}{'faster':>8}{'less mem':>9}"
    ]
    for c in cells:
        ratio = f"{c['faster_x']:.1f}x" if c["faster_x"] else "-"
        memory = f"{c['less_memory_x']:.2f}x" if c["less_memory_x"] else "-"
        lines.append(
            f"{c['quote']:7}{c['chars']:>6} {c['tier']:10}{c['method']:10}{c['width']:>5}x{c['height']:<4}"
            f"{c['duration_s']:>9.1f}{c['peak_rss_mb']:>9.1f}{c['wall_s']:>8.2f}{c['size_bytes'] / 1e6:>9.2f}"
            f"{c['ssim'] or 0:>7.3f}{c['psnr_db'] or 0:>7.1f}{ratio:>8}{memory:>9}"
        )
    return lines
