"""One render attempt in a child process of its own process group, under a memory watchdog.

The watchdog samples the RSS of the whole tree (the child and its ffmpeg) and kills
the group when it passes the budget. RLIMIT_AS is no use as a limit: ffmpeg's address
space is about 2.5x its RSS. Killing the group, not the child, is what stops ffmpeg:
a killed parent leaves its ffmpeg running otherwise.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.memory import TreeSampler
from engine.render.job import RenderJob

_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True)
class IsolatedRun:
    status: str  # "ok", "failed", "killed" (over budget), "crashed" (died by a signal), "timeout"
    error: str | None
    peak_rss_mb: float
    wall_s: float
    timeline: tuple[tuple[float, float], ...]


def run_isolated(
    job: RenderJob,
    budget_mb: float,
    on_sample: Callable[[float, float], None] | None = None,
    timeout_s: float = 900.0,
) -> IsolatedRun:
    job_file = Path(job.temp_dir) / f"job-{job.method}.json"
    job_file.write_text(job.to_json())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_PROJECT_ROOT, os.environ.get("PYTHONPATH")]))}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.render.child", str(job_file)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,  # its own process group: one killpg reaches every ffmpeg
    )
    sampler = TreeSampler(
        proc.pid, budget_mb=budget_mb, on_over=lambda _rss: _kill_group(proc.pid), on_sample=on_sample
    )
    timed_out = False
    try:
        with sampler:
            try:
                _, stderr = proc.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc.pid)
                _, stderr = proc.communicate()
    finally:
        _kill_group(proc.pid)  # whatever the outcome, nothing of this attempt outlives it
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        job_file.unlink(missing_ok=True)
    wall = time.monotonic() - started
    status, error = _outcome(proc.returncode, stderr, sampler, budget_mb, timed_out, timeout_s)
    return IsolatedRun(status, error, round(sampler.peak_mb, 1), round(wall, 3), tuple(sampler.timeline))


def _outcome(code: int, stderr: bytes, sampler: TreeSampler, budget_mb: float, timed_out: bool, timeout_s: float):
    if sampler.over_budget_mb is not None:
        return (
            "killed",
            f"killed by the watchdog at {sampler.over_budget_mb:.0f} MB, over its {budget_mb:.0f} MB budget",
        )
    if timed_out:
        return "timeout", f"stopped after {timeout_s:.0f} s without finishing"
    if code == 0:
        return "ok", None
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        return "crashed", f"the render process died ({name})"
    lines = stderr.decode(errors="replace").strip().splitlines()
    return "failed", lines[-1] if lines else f"the render process exited with {code}"


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
