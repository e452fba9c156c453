"""How much memory there really is, and how much a process tree holds.

Inside a container `psutil.virtual_memory()` reports the host, so available memory
is the smallest of the host's figure, the container's headroom (cgroup v1 or v2,
resolved through this process's own cgroup, every ancestor's limit counted) and
the `MAX_MEMORY_MB` cap minus what this app's process tree holds.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

MB = 1024 * 1024
# cgroup v1 writes "no limit" as a page-rounded LONG_MAX; anything this large is unlimited.
_UNLIMITED = 1 << 60


@dataclass(frozen=True)
class ContainerMemory:
    limit_mb: float
    used_mb: float  # working set: usage minus inactive file cache, as the OOM killer sees it

    @property
    def headroom_mb(self) -> float:
        return max(0.0, self.limit_mb - self.used_mb)


@dataclass(frozen=True)
class MemoryReading:
    available_mb: float
    host_available_mb: float
    container: ContainerMemory | None
    cap_mb: int | None
    app_rss_mb: float
    bound_by: str  # "host", "container" or "MAX_MEMORY_MB": which figure was smallest

    @property
    def container_limit_mb(self) -> float | None:
        return self.container.limit_mb if self.container else None


def read_memory(max_memory_mb: int | None = None, sys_root: Path = Path("/")) -> MemoryReading:
    """Read available memory now, container-aware, net of this app's own tree."""
    host = psutil.virtual_memory().available / MB
    container = container_memory(sys_root)
    app = tree_rss_mb(os.getpid())
    candidates = {"host": host}
    if container is not None:
        candidates["container"] = container.headroom_mb
    if max_memory_mb is not None:
        candidates["MAX_MEMORY_MB"] = max(0.0, max_memory_mb - app)
    bound_by = min(candidates, key=candidates.__getitem__)
    return MemoryReading(candidates[bound_by], host, container, max_memory_mb, app, bound_by)


def container_memory(sys_root: Path = Path("/")) -> ContainerMemory | None:
    """The tightest cgroup limit over this process's cgroup and its ancestors, or None."""
    try:
        lines = (sys_root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            found = _tightest(sys_root / "sys/fs/cgroup", path, _read_v2)
        elif "memory" in controllers.split(","):
            found = _tightest(sys_root / "sys/fs/cgroup/memory", path, _read_v1)
        else:
            continue
        if found is not None:
            return found
    return None


def _tightest(mount: Path, path: str, read) -> ContainerMemory | None:
    """Walk from the process's cgroup up to the mount; keep the level with least headroom.

    With a cgroup namespace the path is "/" and the mount root is our own cgroup; a
    path that is not visible (no namespace, host mount) falls back to the mount root.
    """
    own = mount / path.strip("/")
    start = own if own.is_dir() else mount
    best: ContainerMemory | None = None
    level = start
    while True:
        found = read(level)
        if found is not None and (best is None or found.headroom_mb < best.headroom_mb):
            best = found
        if level == mount or mount not in level.parents:
            return best
        level = level.parent


def _read_v2(folder: Path) -> ContainerMemory | None:
    limit = _read_int(folder / "memory.max")
    usage = _read_int(folder / "memory.current")
    if limit is None or usage is None or limit >= _UNLIMITED:
        return None
    inactive = _stat_field(folder / "memory.stat", "inactive_file")
    return ContainerMemory(limit / MB, max(0, usage - inactive) / MB)


def _read_v1(folder: Path) -> ContainerMemory | None:
    limit = _read_int(folder / "memory.limit_in_bytes")
    usage = _read_int(folder / "memory.usage_in_bytes")
    if limit is None or usage is None or limit >= _UNLIMITED:
        return None
    stat = folder / "memory.stat"
    inactive = _stat_field(stat, "total_inactive_file") or _stat_field(stat, "inactive_file")
    return ContainerMemory(limit / MB, max(0, usage - inactive) / MB)


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return _UNLIMITED
    try:
        return int(text)
    except ValueError:
        return None


def _stat_field(path: Path, field: str) -> int:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == field:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants, in MB; 0 when it is gone."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):  # exited between listing and reading
            total += proc.memory_info().rss
    return total / MB
