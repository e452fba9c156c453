"""The watchdog: a command run in a process group of its own, its whole tree's memory sampled
25 times a second, the group killed when it passes its budget or its time.

RLIMIT_AS is no use as a limit: ffmpeg's address space is about 2.5x its RSS. Killing the
group, not the process, is what stops a child's own children (MoviePy's ffmpeg). Every process
started here dies with this one (engine.render.lifetime).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.memory.sampler import TreeSampler
from engine.render.ffmpeg import disk_full, explain
from engine.render.lifetime import die_with_parent

_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
OnSample = Callable[[float, float], None]


@dataclass(frozen=True)
class Step:
    """One command of an attempt."""

    argv: list[str]
    is_ffmpeg: bool  # its stderr is ffmpeg's, explained as such
    crash: bool = False  # test seam: the real process is sent SIGABRT as it starts


def run_step(
    step: Step, budget_mb: float, on_sample: OnSample, remaining_s: float, timeout_s: float
) -> tuple[str, str | None, float]:
    """Run one command under the watchdog: (status, reason, peak MB of its tree)."""
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
    sampler = TreeSampler(proc.pid, budget_mb=budget_mb, on_over=lambda _rss: kill_group(proc.pid), on_sample=on_sample)
    timed_out = False
    try:
        with sampler:
            try:
                _, stderr = proc.communicate(timeout=max(0.1, remaining_s))
            except subprocess.TimeoutExpired:
                timed_out = True
                kill_group(proc.pid)
                _, stderr = proc.communicate()
    finally:
        kill_group(proc.pid)  # whatever the outcome, nothing of this step outlives it
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    status, error = _outcome(proc.returncode, stderr, step, sampler, budget_mb, timed_out, timeout_s)
    return status, error, sampler.peak_mb


def _outcome(code, stderr: bytes, step: Step, sampler: TreeSampler, budget_mb: float, timed_out: bool, timeout_s):
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
        return "crashed", f"the process died ({name})"
    if step.is_ffmpeg:
        return "failed", f"ffmpeg failed: {explain(stderr) or f'exit {code}'}"
    lines = stderr.decode(errors="replace").strip().splitlines()
    return "failed", explain(stderr) if lines else f"the process exited with {code}"


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
