"""Memory-limited cgroups for the soak and the tests: v2 where a writable unified hierarchy
has the memory controller, else v1's memory controller. Needs root.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path


class Cgroup:
    """A memory-limited cgroup: v2 where a writable unified hierarchy exists, else v1."""

    def __init__(self, name: str, limit_mb: int) -> None:
        self.limit = limit_mb * 1024 * 1024
        for base, version in ((Path("/sys/fs/cgroup"), 2), (Path("/sys/fs/cgroup/unified"), 2),
                              (Path("/sys/fs/cgroup/memory"), 1)):  # fmt: skip
            folder = base / name
            try:
                if version == 2 and not (base / "cgroup.controllers").exists():
                    continue
                if version == 2 and "memory" not in (base / "cgroup.controllers").read_text().split():
                    continue
                folder.mkdir()
                limit_file = folder / ("memory.max" if version == 2 else "memory.limit_in_bytes")
                limit_file.write_text(str(self.limit))
                if version == 1:
                    swap = folder / "memory.memsw.limit_in_bytes"  # no swap to hide in
                    if swap.exists():
                        with contextlib.suppress(OSError):
                            swap.write_text(str(self.limit))
                self.folder, self.version = folder, version
                return
            except OSError:
                if folder.exists():
                    folder.rmdir()
        raise RuntimeError("no writable memory cgroup on this machine (needs root and a cgroup hierarchy)")

    def add(self, pid: int) -> None:
        (self.folder / "cgroup.procs").write_text(str(pid))

    def peak_mb(self) -> float:
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        path = self.folder / name
        return int(path.read_text()) / 2**20 if path.exists() else float("nan")

    def rss_mb(self) -> float:
        """Anonymous memory charged to the cgroup now (what cannot be reclaimed), without page cache."""
        stat = self.folder / "memory.stat"
        fields = dict(line.split() for line in stat.read_text().splitlines() if " " in line)
        key = "anon" if self.version == 2 else "total_rss"
        return int(fields.get(key, 0)) / 2**20

    def oom_kills(self) -> int:
        path = self.folder / ("memory.events" if self.version == 2 else "memory.oom_control")
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def remove(self) -> None:
        """Remove the cgroup once its last process has gone (a killed one takes a moment)."""
        for _ in range(50):
            try:
                self.folder.rmdir()
                return
            except OSError:
                time.sleep(0.1)
        print(f"warning: could not remove the cgroup {self.folder}; remove it by hand", file=sys.stderr)


def start_in_cgroup(cgroup: Cgroup, argv: list[str], env: dict[str, str], cwd: Path, **popen) -> subprocess.Popen:
    """Start `argv` inside the cgroup: paused on stdin until moved in, so nothing runs outside it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import os, sys; sys.stdin.readline(); os.execv(sys.argv[1], sys.argv[1:])", *argv],
        cwd=cwd, env=env, stdin=subprocess.PIPE, **popen,
    )  # fmt: skip
    cgroup.add(proc.pid)
    assert proc.stdin is not None
    proc.stdin.write(b"go\n")
    proc.stdin.close()
    proc.stdin = None  # released: communicate() must not touch it again
    return proc


def run_in_cgroup(cgroup: Cgroup, argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """Run `argv` to its end inside the cgroup, capturing its output as text."""
    proc = start_in_cgroup(cgroup, argv, env, cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=3600)
    return subprocess.CompletedProcess(argv, proc.returncode, out.decode(), err.decode())


def available() -> str | None:
    """Why no memory cgroup can be made here, or None when one can."""
    try:
        Cgroup(f"quote-probe-{time.monotonic_ns()}", 64).remove()
    except RuntimeError as exc:
        return str(exc)
    return None


def kill_all(cgroup: Cgroup) -> int:
    """SIGKILL every process left in the cgroup; how many there were."""
    import os
    import signal

    try:
        pids = [int(p) for p in (cgroup.folder / "cgroup.procs").read_text().split()]
    except OSError:
        return 0
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)
