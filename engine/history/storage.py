"""What the app holds on disk and in memory now, and the cleanup that keeps it small.

Cleanup never follows a symlink, never touches a path that resolves outside DATA_DIR,
and never a file or temp folder of a generation still running.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from engine.history import HistoryStore
from engine.memory.reading import read_memory
from engine.settings import Settings

log = logging.getLogger(__name__)

TEMP_GRACE_S = 60.0  # a temp folder younger than this may belong to a generation that is just starting
_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class CleanupReport:
    removed_outputs: int
    removed_bytes: int
    swept_temp: int
    interrupted: int
    unswept_temp: int = 0  # temp entries that could not be removed (logged with the reason)

    def to_json(self) -> dict:
        return asdict(self)


def storage_report(settings: Settings, store: HistoryStore) -> dict:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    reading = read_memory(settings.max_memory_mb)
    outputs, temp = _usage(settings.outputs_dir), _usage(settings.temp_dir)
    return {
        "outputs": {"count": outputs[0], "bytes": outputs[1]},
        "temp": {"count": temp[0], "bytes": temp[1]},
        "database_bytes": store.database_bytes(),
        "disk_free_bytes": shutil.disk_usage(settings.data_dir).free,
        "quota_bytes": settings.max_storage_mb * 1024 * 1024 if settings.max_storage_mb else None,
        "memory": {
            "available_mb": round(reading.available_mb, 1),
            "host_available_mb": round(reading.host_available_mb, 1),
            "app_rss_mb": round(reading.app_rss_mb, 1),
            "container_limit_mb": reading.container_limit_mb,
            "container_used_mb": round(reading.container.used_mb, 1) if reading.container else None,
            "bound_by": reading.bound_by,
        },
    }


def cleanup(
    settings: Settings,
    store: HistoryStore,
    older_than_days: float | None = None,
    keep: Iterable[Path] = (),
    now: float | None = None,
) -> CleanupReport:
    """Remove outputs older than `older_than_days` or beyond MAX_STORAGE_MB (oldest first),
    sweep orphaned temp folders, mark interrupted generations; history rows stay."""
    now = time.time() if now is None else now
    root = settings.data_dir.resolve()
    interrupted = store.mark_interrupted()
    for generation_id in interrupted:
        # A crashed app's renders: end any process still working in the job's folder, then the folder.
        kill_workers_in(settings.temp_dir / generation_id)
        remove_tree(settings.temp_dir / generation_id)
    running = store.running_ids()
    kept = {Path(p).resolve() for p in keep}
    outputs = [f for f in _files(settings.outputs_dir) if _removable(f[0], root, running) and f[0] not in kept]
    # A video and the files beside it (cover, subtitles: the same name, another suffix) go together,
    # aged by the video.
    groups: dict[Path, list[tuple[Path, int, float]]] = {}
    for entry in outputs:
        groups.setdefault(entry[0].with_suffix(""), []).append(entry)
    ranked = sorted(groups.values(), key=_group_age)  # oldest first
    doomed_groups = []
    if older_than_days is not None:
        doomed_groups = [g for g in ranked if _group_age(g) < now - older_than_days * 86400]
    if settings.max_storage_mb:
        quota = settings.max_storage_mb * 1024 * 1024
        total = sum(size for _, size, _ in _files(settings.outputs_dir))
        total -= sum(size for g in doomed_groups for _, size, _ in g)
        for group in ranked:
            if total <= quota:
                break
            if group not in doomed_groups:
                doomed_groups.append(group)
                total -= sum(size for _, size, _ in group)
    doomed = [entry for group in doomed_groups for entry in group]
    removed = [entry for entry in doomed if _unlink(entry[0])]
    store.mark_files_removed([str(path) for path, _, _ in removed])
    swept, unswept = _sweep_temp(settings.temp_dir, root, running, now)
    report = CleanupReport(len(removed), sum(size for _, size, _ in removed), swept, len(interrupted), unswept)
    if removed or swept or interrupted:
        log.info("cleanup: %s", report)
    return report


def _group_age(group: list[tuple[Path, int, float]]) -> float:
    """A group's time: its video's, else (files left without one) its oldest file's."""
    return min((mtime for path, _, mtime in group if path.suffix == ".mp4"), default=min(m for _, _, m in group))


def kill_workers_in(folder: Path) -> int:
    """SIGKILL every process whose command line names a path inside `folder` (render steps
    always name their job's files); how many. Matching the folder, unique per generation,
    keeps a reused pid from being hit."""
    marker = str(folder.resolve())
    killed = 0
    for proc in psutil.process_iter(["cmdline"]):
        if proc.pid != os.getpid() and any(marker in part for part in proc.info["cmdline"] or ()):
            with contextlib.suppress(psutil.Error):
                proc.kill()
                killed += 1
    return killed


def over_quota(settings: Settings) -> bool:
    if not settings.max_storage_mb:
        return False
    return sum(size for _, size, _ in _files(settings.outputs_dir)) > settings.max_storage_mb * 1024 * 1024


def _usage(folder: Path) -> tuple[int, int]:
    """How many regular files `folder` holds and their bytes, not following symlinks: one
    scandir pass, whose entries carry what they need (cheap at 100,000 outputs)."""
    count = size = 0
    pending = [folder]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        with contextlib.suppress(FileNotFoundError):  # removed since it was listed
                            size += entry.stat(follow_symlinks=False).st_size
                            count += 1
        except OSError:
            continue  # gone, or not a folder
    return count, size


def _files(folder: Path) -> list[tuple[Path, int, float]]:
    """Regular files under `folder` (path, bytes, mtime), not following symlinks."""
    found: list[tuple[Path, int, float]] = []
    if not folder.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in filenames:
            path = Path(dirpath, name)
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue  # removed since it was listed: another process's cleanup got there first
            if stat.S_ISREG(info.st_mode):
                found.append((path.resolve(), info.st_size, info.st_mtime))
        dirnames[:] = [d for d in dirnames if not Path(dirpath, d).is_symlink()]
    return found


def _removable(path: Path, root: Path, running: set[str]) -> bool:
    if not path.is_relative_to(root):
        return False
    match = _ID.search(path.name)
    return not (match and match[0] in running)


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False  # removed by another process's cleanup since it was listed
    except OSError as exc:
        log.warning("could not remove %s: %s", path, exc)
        return False


def remove_tree(folder: Path) -> None:
    """Remove a scratch folder and all it holds; what cannot be removed is logged (the start-up
    sweep tries again), a folder already gone is no failure."""

    def failed(_function: object, path: str, info: tuple) -> None:
        if not isinstance(info[1], FileNotFoundError):
            log.warning("could not remove %s: %s", path, info[1])

    shutil.rmtree(folder, onerror=failed)


@contextlib.contextmanager
def held(folder: Path) -> Iterator[Path]:
    """`folder` (made if need be) kept from the temp sweep while the body runs: a shared lock on it,
    which the sweep asks for alone, passing the folder over while it is refused. A folder that is
    not a generation's (the comparison's, the bench's) has no running row to keep it, and sits
    unchanged past TEMP_GRACE_S while its next render waits for memory. The lock is this host's:
    on a network DATA_DIR shared by several hosts, another host's sweep sees only the folder's age."""
    while True:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_SH)
        if os.fstat(fd).st_nlink:
            break
        os.close(fd)  # removed by a sweep while the lock was awaited: made again
    try:
        yield folder
    finally:
        os.close(fd)


@contextlib.contextmanager
def scratch(settings: Settings, prefix: str) -> Iterator[Path]:
    """A new folder in DATA_DIR/tmp, held from the sweep while the body runs, and removed after
    (still held, so that no sweep is removing it at the same time)."""
    settings.temp_dir.mkdir(parents=True, exist_ok=True)
    with held(Path(tempfile.mkdtemp(prefix=prefix, dir=settings.temp_dir))) as folder:
        try:
            yield folder
        finally:
            remove_tree(folder)


def _remove_unless_held(folder: Path) -> bool:
    """Remove `folder` under its lock taken alone; False, leaving it, while a process holds it."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        shutil.rmtree(folder)
        return True
    finally:
        os.close(fd)


def _sweep_temp(temp_dir: Path, root: Path, running: set[str], now: float) -> tuple[int, int]:
    """Remove temp entries no running generation owns; how many went, and how many could not."""
    if not temp_dir.is_dir():
        return 0, 0
    swept = unswept = 0
    for entry in temp_dir.iterdir():
        try:
            if entry.name in running or now - entry.lstat().st_mtime < TEMP_GRACE_S:
                continue
            if entry.is_symlink() or not entry.is_dir():
                entry.unlink(missing_ok=True)  # the link itself, inside DATA_DIR; never its target
            elif not entry.resolve().is_relative_to(root) or not _remove_unless_held(entry):
                continue
        except FileNotFoundError:
            continue  # swept by another process starting at the same time
        except OSError as exc:
            log.warning("could not remove %s from the temp folder: %s", entry, exc)
            unswept += 1
            continue
        swept += 1
    return swept, unswept
