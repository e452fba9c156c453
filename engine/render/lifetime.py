"""Every process a render starts dies with the process that started it.

Linux's parent-death signal (prctl PR_SET_PDEATHSIG) asks the kernel to SIGKILL a child when
its parent goes, however the parent goes (SIGKILL included). It is set between fork and exec
(`preexec_fn`), so no window is left in which a child could outlive a parent that died first;
the function runs no Python beyond one call into libc, resolved before the fork.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


def _prctl() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None  # not Linux: the start-up sweep of orphans still applies


_PRCTL = _prctl()


def take_group_down_with_parent() -> None:
    """In a child that starts children of its own (MoviePy's render child and its ffmpeg): when our
    parent dies, take our whole process group down, not just ourselves. The parent-death signal
    becomes SIGTERM, whose handler SIGKILLs the group; `die_with_parent` covered the time until now."""
    if _PRCTL is None:
        return
    signal.signal(signal.SIGTERM, lambda _signum, _frame: os.killpg(0, signal.SIGKILL))
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def engine_env() -> dict[str, str]:
    """This process's environment for a Python child that runs `-m engine...`: this checkout first on
    its path, whatever the current directory (the app may be started from anywhere)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_PROJECT_ROOT, os.environ.get("PYTHONPATH")]))}


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` for subprocess.Popen that ties the child's life to this process's."""
    if _PRCTL is None:
        return None
    prctl, parent = _PRCTL, os.getpid()

    def tie() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return tie
