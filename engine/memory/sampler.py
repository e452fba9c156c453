"""Watching a process tree: its memory sampled in a background thread, with a watchdog.

The resident memory of a process and its descendants, summed at 25 Hz (100 Hz in its first
second), less the file-backed pages (statm's resident less shared): what the tree itself holds,
and what a container cannot take back. The file pages are mostly the ffmpeg binary's 172 MB,
mapped by every run and shared with every other: counted, the same encode read 53 MB on one
checkout and 59 to 70 MB on a fresh one (its page cache in large folios), while its own memory
was 29.85 MB in both.
`ru_maxrss` of RUSAGE_CHILDREN is the largest single child, not the tree, so it is no use here.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import psutil

from engine.memory.reading import MB


class _Tree:
    """A process tree, found cheaply at every sample.

    psutil finds descendants by reading every process's parent (about 1.6 ms here, where
    system calls are slow). A descendant is younger than its root, so on Linux only the
    processes numbered above the root are read: a handful. Every `rescan_every` samples,
    and on systems without /proc, psutil's full scan runs instead (pid numbers wrap).

    A child that is still a copy of the root (forked, not yet exec'd: Python's subprocess runs
    `preexec_fn` there) shares the root's pages and is not counted twice: counted, a Python
    process of 60 MB read 124 MB while it started a probe.
    """

    def __init__(self, pid: int, rescan_every: int) -> None:
        self.pid = pid
        self.rescan_every = rescan_every
        self.count = 0
        self.proc_fs = Path("/proc/self/stat").exists()
        self.command = _command(pid)

    def held_mb(self) -> float:
        full = not self.proc_fs or self.count % self.rescan_every == 0
        self.count += 1
        members = self._full_scan() if full else self._quick_scan()
        if not self.command:
            # Read as the root was still starting (exec had closed Popen's pipe, not yet set the
            # arguments), it was empty, and every copy of the root would count in full for the rest of
            # the run: 6 to 17 MB on a generation's peak, in a quarter to two thirds of runs (measured).
            self.command = _command(self.pid)
        copies = {pid for pid in members[1:] if self.command and _command(pid) == self.command}
        return sum(_anon_bytes(pid) for pid in members if pid not in copies) / MB

    def _full_scan(self) -> list[int]:
        try:
            root = psutil.Process(self.pid)
            return [self.pid, *(p.pid for p in root.children(recursive=True))]
        except psutil.Error:
            return []

    def _quick_scan(self) -> list[int]:
        parents: dict[int, list[int]] = {}
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) > self.pid:
                parent = _parent(int(name))
                if parent is not None:
                    parents.setdefault(parent, []).append(int(name))
        members, queue = [self.pid], [self.pid]
        while queue:
            children = parents.get(queue.pop(), [])
            members += children
            queue += children
        return members


def _command(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def _parent(pid: int) -> int | None:
    fields = stat_fields(pid)
    return int(fields[1]) if fields else None


def stat_fields(pid: int) -> list[bytes] | None:
    """/proc/PID/stat's fields after the command, the state first (field 3 in proc(5)); None when the
    process is gone. The command, in parentheses, may hold spaces: the fields follow the last ")"."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2 :].split()


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class TreeSampler:
    """Samples a process tree's RSS in a background thread, keeping peak and timeline.

    With `budget_mb` and `on_over`, calls `on_over(rss_mb)` once when the tree passes
    the budget: the watchdog. `interval_s` defaults to 40 ms (25 Hz): measured here, a
    sample costs about 0.5 ms of CPU, so watching a render costs under 2% of its time.
    For its first FAST_FOR_S it samples every FAST_S (100 Hz), for the peak and the watchdog only
    (the timeline keeps its rate): a 480p still card renders in 0.13 s, and at 25 Hz its peak read
    5 MB of the 17 it holds.
    """

    FAST_S = 0.01
    FAST_FOR_S = 1.0

    def __init__(
        self,
        pid: int,
        interval_s: float = 0.04,
        budget_mb: float | None = None,
        on_over=None,
        on_sample=None,
        rescan_every: int = 25,
    ) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.budget_mb = budget_mb
        self._on_over = on_over
        self._on_sample = on_sample
        self.timeline: list[tuple[float, float]] = []
        self._due_s = 0.0  # when the timeline's next point is due
        self.peak_mb = 0.0
        self.samples = 0
        self.over_budget_mb: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-sampler-{pid}", daemon=True)
        self._t0 = time.monotonic()
        self._tree = _Tree(pid, rescan_every)

    def __enter__(self) -> TreeSampler:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.sample()  # one last reading, so a very short run still has a figure

    def sample(self) -> float:
        rss = self._tree.held_mb()
        self.samples += 1
        t = time.monotonic() - self._t0
        on_time = t >= self._due_s - 0.001
        if on_time:
            # On a fixed grid, not interval_s after the last point: sampled every 13 ms on a busy
            # machine, "40 ms since the last" kept one point in four, every 52 ms (19 Hz).
            self._due_s = self._due_s + self.interval_s if t - self._due_s < self.interval_s else t + self.interval_s
        if (on_time or rss > self.peak_mb) and (rss > 0 or not self.timeline):
            self.timeline.append((round(t, 3), round(rss, 1)))
            if self._on_sample is not None:
                self._on_sample(t, rss)
        self.peak_mb = max(self.peak_mb, rss)
        if self.budget_mb is not None and rss > self.budget_mb and self.over_budget_mb is None:
            self.over_budget_mb = rss
            if self._on_over is not None:
                self._on_over(rss)
        return rss

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            fast = time.monotonic() - self._t0 < self.FAST_FOR_S
            self._stop.wait(min(self.interval_s, self.FAST_S) if fast else self.interval_s)


def renders_anon_mb(pid: int) -> float:
    """Anonymous memory held now by the renders a process started: its descendants in sessions
    of their own (every render step starts one), not its quick helpers (probes) nor a child
    between fork and exec, which shows its parent's pages. Anonymous memory only: it is what a
    container is charged for a process, where file pages (the ffmpeg binary, Python's libraries)
    may be charged to whoever read them first."""
    try:
        own_session = os.getsid(pid)
        children = psutil.Process(pid).children(recursive=True)
    except (OSError, psutil.Error):
        return 0.0
    total = 0
    for child in children:
        try:
            if os.getsid(child.pid) != own_session:
                total += _anon_bytes(child.pid)
        except OSError:
            continue  # exited between listing and reading
    return total / MB


def _anon_bytes(pid: int) -> int:
    """Resident pages less shared (file-backed) ones, from /proc/PID/statm (RSS where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/statm").read_bytes().split()
        return (int(fields[1]) - int(fields[2])) * _PAGE
    except (OSError, IndexError, ValueError):
        try:
            return psutil.Process(pid).memory_info().rss
        except psutil.Error:
            return 0  # exited between listing and reading
