"""The watchdog: a command run in a process group of its own, its whole tree's memory sampled
25 times a second, the group killed when it passes its budget or its time.

RLIMIT_AS is no use as a limit: ffmpeg's address space is about 2.5x its RSS. Killing the
group, not the process, is what stops a child's own children (MoviePy's ffmpeg). Every process
started here dies with this one (engine.render.lifetime).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from engine.errors import RenderFailed
from engine.memory.sampler import TreeSampler
from engine.render.ffmpeg import disk_full, explain
from engine.render.lifetime import die_with_parent, engine_env

OnSample = Callable[[float, float], None]


@dataclass(frozen=True)
class Step:
    """One command of an attempt."""

    argv: list[str]
    is_ffmpeg: bool  # its stderr is ffmpeg's, explained as such
    crash: bool = False  # test seam: the real process is sent SIGABRT as it starts
    # Writes the command's stdin from this process; it may wait on the frames ffmpeg has done
    # (its `-progress pipe:1` lines) so as not to run ahead of the encoder.
    feed: Callable[[BinaryIO, Progress], None] | None = None
    env: tuple[tuple[str, str], ...] = ()  # set for the command, over this process's environment
    before: Callable[[], None] | None = None  # readies the command's input files; may raise RenderFailed


class Progress:
    """How many frames ffmpeg reports done, read from its `-progress` lines on stdout."""

    def __init__(self) -> None:
        self.frames = 0
        self.changed = threading.Condition()

    def wait_for(self, frames: int, stall_s: float = 1.0) -> bool:
        """Until ffmpeg has done `frames` frames, has stopped, or has said nothing new for `stall_s`
        (it may want more input before it says anything: a writer must never wait on it forever).
        False when it stalled."""
        with self.changed:
            while self.frames < frames:
                seen = self.frames

                def moved(seen: int = seen) -> bool:
                    return self.frames != seen

                # ffmpeg repeats its count every period: only a new count, not a line, is progress.
                if not self.changed.wait_for(moved, timeout=stall_s):
                    return False
            return True

    def read(self, stdout: IO[bytes]) -> None:
        for line in stdout:
            if line.startswith(b"frame="):
                with self.changed:
                    self.frames = int(line[6:] or 0)
                    self.changed.notify_all()
        with self.changed:
            self.frames = 1 << 62  # ended: nothing more to wait for
            self.changed.notify_all()


class _Reader:
    """A pipe read to its end by a thread, so that waiting on the process cannot fill it and stall it."""

    def __init__(self, pipe: IO[bytes] | None) -> None:
        self.chunks: list[bytes] = []
        self.thread = threading.Thread(target=lambda: self.chunks.append(pipe.read()) if pipe else None, daemon=True)
        self.thread.start()

    def text(self) -> bytes:
        self.thread.join()
        return b"".join(self.chunks)


class _Feeder:
    """A step's stdin written by a thread of ours; what went wrong on our side is kept for the outcome."""

    def __init__(self, feed: Callable[[BinaryIO, Progress], None]) -> None:
        self.feed = feed
        self.read_end, write_end = os.pipe()
        self.pipe = os.fdopen(write_end, "wb")
        self.progress = Progress()
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, name="step-feed", daemon=True)
        self.reader: threading.Thread | None = None

    def start(self, stdout: IO[bytes]) -> None:
        self.reader = threading.Thread(target=self.progress.read, args=(stdout,), name="step-progress", daemon=True)
        self.reader.start()
        self.thread.start()

    def join(self) -> None:
        self.thread.join()
        if self.reader is not None:
            self.reader.join()  # its pipe ends with the command

    def _run(self) -> None:
        try:
            with self.pipe:
                self.feed(self.pipe, self.progress)
        except (BrokenPipeError, ValueError):
            pass  # the command stopped reading (killed, or failed): its own outcome says why
        except Exception as exc:  # any failure of ours becomes the step's reason
            self.error = str(exc) or type(exc).__name__


def run_step(
    step: Step, budget_mb: float, on_sample: OnSample, remaining_s: float, timeout_s: float
) -> tuple[str, str | None, float]:
    """Run one command under the watchdog: (status, reason, peak MB of its tree)."""
    if step.before is not None:
        try:
            step.before()
        except RenderFailed as exc:
            return "failed", str(exc), 0.0
    env = engine_env()
    env.update(step.env)
    feeder = _Feeder(step.feed) if step.feed is not None else None
    try:
        proc = subprocess.Popen(
            step.argv,
            stdin=feeder.read_end if feeder is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if feeder is not None else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # its own process group: one killpg reaches every ffmpeg
            preexec_fn=die_with_parent(),  # and it dies with us, even if we are SIGKILLed
        )
    except (OSError, subprocess.SubprocessError) as exc:
        if feeder is not None:
            feeder.pipe.close()
        why = getattr(exc, "strerror", None) or str(exc)
        return "failed", f"could not start {Path(step.argv[0]).name} ({why}); reinstall the requirements", 0.0
    finally:
        if feeder is not None:
            os.close(feeder.read_end)  # the child holds its own copy
    errors = _Reader(proc.stderr)
    if feeder is not None and proc.stdout is not None:
        feeder.start(proc.stdout)
    if step.crash:  # a method that dies hard, for testing the chain: the real ffmpeg, aborted
        os.kill(proc.pid, signal.SIGABRT)
    sampler = TreeSampler(proc.pid, budget_mb=budget_mb, on_over=lambda _rss: kill_group(proc.pid), on_sample=on_sample)
    timed_out = False
    try:
        with sampler:
            if not wait(proc, max(0.1, remaining_s)):
                timed_out = True
                kill_group(proc.pid)
                proc.wait()
    finally:
        kill_group(proc.pid)  # whatever the outcome, nothing of this step outlives it
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if feeder is not None:
            feeder.join()
    stderr = errors.text()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    status, error = _outcome(proc.returncode, stderr, step, sampler, budget_mb, timed_out, timeout_s)
    if feeder is not None and feeder.error is not None and status in ("ok", "failed"):
        status, error = "failed", feeder.error  # ours is the cause: ffmpeg only saw its input end early
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


def wait(proc: subprocess.Popen, timeout_s: float) -> bool:
    """Wait for `proc` to end, woken as it does (through a pidfd): subprocess's own timed wait
    polls with sleeps of up to 50 ms, 15 ms late on average for a render's step (measured).
    False when `timeout_s` passed first."""
    open_pidfd = getattr(os, "pidfd_open", None)  # Linux 5.3 and later
    try:
        handle = open_pidfd(proc.pid) if open_pidfd is not None else None
    except OSError:
        handle = None
    if handle is None:
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        ended = select.poll()  # not select.select: a long-lived server's descriptors pass 1024
        ended.register(handle, select.POLLIN)
        done = bool(ended.poll(timeout_s * 1000))
    finally:
        os.close(handle)
    if done:
        proc.wait()
    return done


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
