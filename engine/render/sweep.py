"""The tuning sweep: one quote rendered at every tier with every method, side by side.

Speech is made once (offline, so every render hears the same audio); each cell records
memory, time, size and picture quality, and keeps a frame of its video to compare by eye.
The benchmark measures its cells the same way.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from engine.choices import METHODS, TIERS
from engine.history.storage import held, scratch
from engine.memory.costs import CostModel, key_for
from engine.memory.ledger import Ledger, Need, Waiting
from engine.memory.limits import VisitorLimits
from engine.memory.plan import cost_model, margin_mb
from engine.memory.tiers import tier
from engine.render import ffmpeg
from engine.render.isolation import run_isolated
from engine.render.quality import measure
from engine.render.spec import RenderSpec, encoder_threads
from engine.settings import Settings
from engine.speech.base import SpeechOrder
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
    status: str = "ok"  # in a sweep, a render the watchdog stopped is shown, not raised
    error: str | None = None


def sweep(
    text: str,
    author: str,
    settings: Settings,
    frames_dir: Path,
    ledger: Ledger | None = None,
    visitor: tuple[VisitorLimits, str] | None = None,
    progress: Callable[[str], None] = print,
) -> list[tuple[Cell, Path]]:
    """Render one quote at every tier and method (one run each, speech made once); each
    cell with a frame of its video, saved in `frames_dir` for comparing by eye. With a
    `ledger`, each render waits its turn for memory like a generation and runs under the
    watchdog; with `visitor`, the whole sweep counts as one of that visitor's generations."""
    limits, who = visitor or (VisitorLimits(), "")
    case = {"name": "sweep", "text": text, "author": author}
    model = cost_model(None)
    # The frames' folder is in DATA_DIR/tmp when the page asks: held, as the scratch is.
    with limits.hold(who), held(frames_dir), scratch(settings, "sweep-") as folder:
        speech = EspeakEngine().synthesize(SpeechOrder(text, "en", folder))
        done = []
        for tier_name, method in SWEEP:
            frame = frames_dir / f"{tier_name}-{method}.jpg"
            admit = reservation(ledger, model, method, tier_name, speech.duration_s, on_wait=_say_wait(progress))
            cell = measure_cell(case, tier_name, method, speech, 1, folder, settings, frame, admit=admit, strict=False)
            outcome = f"{cell.peak_rss_mb:7.1f} MB {cell.wall_s:6.2f} s" if cell.status == "ok" else cell.error
            progress(f"{tier_name:9} {method:9} {outcome}")
            done.append((cell, frame))
        return done


def _say_wait(progress: Callable[[str], None]) -> Callable[[Waiting], None]:
    last = [0.0]

    def said(state: Waiting) -> None:
        if state.waited_s - last[0] >= 1.0 or not last[0]:
            last[0] = state.waited_s or 0.001
            progress(f"waiting for memory: position {state.position}, {state.running} render(s) running, "
                     f"waited {state.waited_s:.0f} s")  # fmt: skip

    return said


# Every tier with each full method, then the last resort at its own tier.
SWEEP = [*((t, m) for t in TIERS for m in METHODS if m != "emergency"), ("emergency", "emergency")]
Admit = Callable[[], AbstractContextManager[float]]


def reservation(
    ledger: Ledger | None,
    model: CostModel,
    method: str,
    tier_name: str,
    duration_s: float,
    limited: bool = True,
    on_wait: Callable[[Waiting], None] | None = None,
) -> Admit:
    """A render's turn in the host's ledger, with its predicted need reserved; the context gives the
    watchdog's budget: the grant (`limited`), or none for a measurement that must not be cut short
    (the benchmark, calibration). No ledger: no turn, no limit."""
    if ledger is None:
        return lambda: nullcontext(NO_LIMIT_MB)
    cost = model.predict(key_for(method, tier_name, "16:9", False, False, duration_s))
    need = Need(f"{method} {tier_name}", cost.peak_mb + margin_mb(cost.peak_mb), cost.wall_s(duration_s) + 1)

    @contextmanager
    def held() -> Iterator[float]:
        with ledger.admit([need], on_wait) as grant:
            yield grant.budget_mb if limited else NO_LIMIT_MB

    return held


def measure_cell(
    case: dict, tier_name: str, method: str, speech, runs: int, folder: Path, settings: Settings,
    keep_frame: Path | None = None, child: str = "engine.render.child", admit: Admit | None = None,
    strict: bool = True,
) -> Cell:  # fmt: skip
    """Render one cell `runs` times, each in its turn (`admit`); medians of its figures. A render
    that fails raises when `strict` (the benchmark), else is a cell with its status and reason (the
    sweep shows it)."""
    used = tier(tier_name, settings)
    width, height = used.size("16:9")
    card = draw_card(case["text"], case.get("author", ""), (width, height), folder / f"card-{width}x{height}.png")
    duration = min(speech.duration_s, used.max_duration_s or speech.duration_s)
    measured, quality = [], None
    for attempt in range(runs):
        out = folder / f"{method}-{tier_name}-{attempt}.mp4"
        spec = RenderSpec(
            method=method, card_path=str(card), audio_path=str(speech.path), out_path=str(out), temp_dir=str(folder),
            width=width, height=height, fps=used.fps, video_kbps=used.video_kbps, audio_kbps=used.audio_kbps,
            duration_s=round(duration, 3), threads=encoder_threads(),
        )  # fmt: skip
        with (admit or (lambda: nullcontext(NO_LIMIT_MB)))() as budget:
            run = run_isolated(spec, budget, child=child)
        if run.status != "ok":
            out.unlink(missing_ok=True)
            if strict:
                raise RuntimeError(f"bench {method} at {tier_name} failed: {run.error}")
            return Cell(case["name"], len(case["text"]), tier_name, method, width, height, round(duration, 2), runs,
                        run.peak_rss_mb, run.wall_s, 0, None, None, status=run.status, error=run.error)  # fmt: skip
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
