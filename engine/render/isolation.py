"""One render attempt in child processes of their own process group, under the memory watchdog.

MoviePy runs in a Python child (`engine.render.child`); the FFmpeg and emergency methods
run their ffmpeg commands directly, one after another, so no interpreter sits beside
them. Each step runs under `engine.memory.watchdog`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import RenderFailed
from engine.memory.malloc import CHILD_ENV
from engine.memory.watchdog import OnSample, Step, run_step
from engine.render import still_loop
from engine.render.spec import RenderSpec
from engine.render.still_loop import Frames, OnPictures


@dataclass(frozen=True)
class IsolatedRun:
    status: str  # "ok", "failed", "killed" (over budget), "crashed" (died by a signal), "timeout"
    error: str | None
    peak_rss_mb: float
    wall_s: float
    timeline: tuple[tuple[float, float], ...]


def run_isolated(
    spec: RenderSpec,
    budget_mb: float,
    on_sample: OnSample | None = None,
    timeout_s: float = 900.0,
    child: str = "engine.render.child",
    frames: Frames | None = None,
    on_pictures: OnPictures | None = None,
) -> IsolatedRun:
    """Run one attempt; `child` is the module a Python child runs the spec with (MoviePy's).
    `frames` draws a caption state's card for the FFmpeg method (by default, its PNG is read);
    `on_pictures` is given its encoded pictures before the mux (engine.render.still_loop.steps)."""
    started = time.monotonic()
    try:
        steps, scratch = _plan(spec, child, frames, on_pictures)
    except RenderFailed as exc:  # ffmpeg missing: this method fails, the chain goes on
        return IsolatedRun("failed", str(exc), 0.0, 0.0, ())
    peak, timeline, status, error = 0.0, [], "ok", None
    try:
        for step in steps:
            offset = time.monotonic() - started

            def sample(t_s: float, rss_mb: float, offset: float = offset) -> None:
                timeline.append((round(offset + t_s, 3), round(rss_mb, 1)))
                if on_sample is not None:
                    on_sample(offset + t_s, rss_mb)

            remaining = timeout_s - (time.monotonic() - started)
            status, error, step_peak = run_step(step, budget_mb, sample, remaining, timeout_s)
            peak = max(peak, step_peak)
            if status != "ok":
                break
    finally:
        for path in scratch:
            path.unlink(missing_ok=True)
        if status != "ok":
            Path(spec.out_path).unlink(missing_ok=True)  # no partial video is left behind
    return IsolatedRun(status, error, round(peak, 1), round(time.monotonic() - started, 3), tuple(timeline))


def _plan(
    spec: RenderSpec, child: str, frames: Frames | None, on_pictures: OnPictures | None
) -> tuple[list[Step], list[Path]]:
    """The commands of an attempt, and the scratch files to remove after it."""
    if spec.method in still_loop.METHODS:
        return still_loop.steps(spec, frames, on_pictures)
    spec_file = Path(spec.temp_dir) / f"spec-{spec.method}.json"
    spec_file.write_text(spec.to_json())
    # Big buffers given back (memory/malloc) keep MoviePy flat in duration and halve it with captions,
    # where every frame is piped, each mapped and unmapped again: at twice the time (measured, phrase
    # captions at 1080x1920: 241 MB in 10.3 s without, 112 MB in 19.9 s with). Memory comes first here;
    # the prior is measured so. The benchmark's plain MoviePy runs as it comes.
    env = CHILD_ENV if child.startswith("engine.") else ()
    return [Step([sys.executable, "-m", child, str(spec_file)], False, env=env)], [spec_file]
