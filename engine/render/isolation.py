"""One render attempt in child processes of their own process group, under a memory watchdog.

MoviePy runs in a Python child (`engine.render.child`); the FFmpeg and emergency methods
run their ffmpeg commands directly, one after another, so no interpreter sits beside
them. Each step gets its own process group; a watchdog samples the RSS of the step's
whole tree and kills the group when it passes the budget. RLIMIT_AS is no use as a limit:
ffmpeg's address space is about 2.5x its RSS. Killing the group, not the process, is
what stops MoviePy's ffmpeg: a killed parent leaves its ffmpeg running otherwise.
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

from engine.errors import RenderFailed
from engine.memory.sampler import TreeSampler
from engine.render import still_loop
from engine.render.ffmpeg import disk_full, explain
from engine.render.lifetime import die_with_parent
from engine.render.spec import RenderSpec

_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
OnSample = Callable[[float, float], None]


@dataclass(frozen=True)
class IsolatedRun:
    status: str  # "ok", "failed", "killed" (over budget), "crashed" (died by a signal), "timeout"
    error: str | None
    peak_rss_mb: float
    wall_s: float
    timeline: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class _Step:
    argv: list[str]
    is_ffmpeg: bool
    crash: bool = False  # test seam: the real process is sent SIGABRT as it starts


def run_isolated(
    spec: RenderSpec,
    budget_mb: float,
    on_sample: OnSample | None = None,
    timeout_s: float = 900.0,
    child: str = "engine.render.child",
) -> IsolatedRun:
    """Run one attempt; `child` is the module a Python child runs the spec with (MoviePy's)."""
    started = time.monotonic()
    try:
        steps, scratch = _plan(spec, child)
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
            status, error, step_peak = _run_step(step, budget_mb, sample, remaining, timeout_s)
            peak = max(peak, step_peak)
            if status != "ok":
                break
    finally:
        for path in scratch:
            path.unlink(missing_ok=True)
    return IsolatedRun(status, error, round(peak, 1), round(time.monotonic() - started, 3), tuple(timeline))


def _plan(spec: RenderSpec, child: str) -> tuple[list[_Step], list[Path]]:
    """The commands of an attempt, and the scratch files to remove after it."""
    if spec.method in still_loop.METHODS:
        commands, scratch = still_loop.commands(spec)
        return [_Step(argv, True, crash=spec.crash and n == 0) for n, argv in enumerate(commands)], scratch
    spec_file = Path(spec.temp_dir) / f"spec-{spec.method}.json"
    spec_file.write_text(spec.to_json())
    return [_Step([sys.executable, "-m", child, str(spec_file)], False)], [spec_file]


def _run_step(step: _Step, budget_mb: float, on_sample: OnSample, remaining_s: float, timeout_s: float):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_PROJECT_ROOT, os.environ.get("PYTHONPATH")]))}
    try:
        proc = subprocess.Popen(
            step.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # its own process group: one killpg reaches every ffmpeg
            preexec_fn=die_with_parent(),  # and it dies with us, even if we are SIGKILLed
        )
    except OSError as exc:
        return "failed", f"could not start {Path(step.argv[0]).name} ({exc.strerror}); reinstall the requirements", 0.0
    if step.crash:  # a method that dies hard, for testing the chain: the real ffmpeg, aborted
        os.kill(proc.pid, signal.SIGABRT)
    sampler = TreeSampler(
        proc.pid, budget_mb=budget_mb, on_over=lambda _rss: _kill_group(proc.pid), on_sample=on_sample
    )
    timed_out = False
    try:
        with sampler:
            try:
                _, stderr = proc.communicate(timeout=max(0.1, remaining_s))
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc.pid)
                _, stderr = proc.communicate()
    finally:
        _kill_group(proc.pid)  # whatever the outcome, nothing of this step outlives it
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    status, error = _outcome(proc.returncode, stderr, step, sampler, budget_mb, timed_out, timeout_s)
    return status, error, sampler.peak_mb


def _outcome(code, stderr: bytes, step: _Step, sampler: TreeSampler, budget_mb: float, timed_out: bool, timeout_s):
    if sampler.over_budget_mb is not None:
        over = sampler.over_budget_mb
        return "killed", f"killed by the watchdog at {over:.0f} MB, over its {budget_mb:.0f} MB budget"
    if timed_out:
        return "timeout", f"stopped after {timeout_s:.0f} s without finishing"
    if code == 0:
        return "ok", None
    if code == -signal.SIGXFSZ:
        return "failed", disk_full("SIGXFSZ")
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        return "crashed", f"the render process died ({name})"
    if step.is_ffmpeg:
        return "failed", f"ffmpeg failed: {explain(stderr) or f'exit {code}'}"
    lines = stderr.decode(errors="replace").strip().splitlines()
    return "failed", explain(stderr) if lines else f"the render process exited with {code}"


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
