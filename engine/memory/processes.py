"""Which process is which, by what the kernel keeps and no clock: a process's start in clock ticks
since boot (/proc/PID/stat), the PID namespace that numbers it, and the boot it belongs to.

Not psutil's create_time: it adds the boot time as the wall clock has it now, so a clock set
forward or back (a VM resumed, NTP stepping) made every live process look like another one.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from engine.memory.sampler import stat_fields

UNKNOWN = "unknown"  # the boot of a host without /proc: nothing is told by it


def start_ticks(pid: int) -> float:
    """When `pid` started, in clock ticks since boot; 0 when it is gone."""
    return _stat(pid)[0]


def alive(pid: int, born: float) -> bool:
    """Is `pid` still the running process that started at `born` (not a reused number, not a zombie)?"""
    start, state = _stat(pid)
    return start > 0 and start == born and state != "Z"


@cache
def pid_namespace() -> str:
    """The PID namespace this process's numbers belong to (containers in a pod share a host name)."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "0"


@cache
def boot_id() -> str:
    """This boot of the host's kernel: process starts count from it."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or UNKNOWN
    except OSError:
        return UNKNOWN


def identity(pid: int) -> str | None:
    """What names `pid` for as long as it runs, on any clock: boot, PID namespace, start; None
    where the kernel does not say (no /proc)."""
    start = start_ticks(pid)
    if boot_id() == UNKNOWN or start <= 0:
        return None
    return f"{boot_id()} {pid_namespace()} {start:.0f}"


def still_running(pid: int, named: str) -> bool | None:
    """Is `pid` still the process `identity` named `named`? None when this process cannot tell:
    it was named in another PID namespace. A name of another boot is of a process gone."""
    try:
        boot, namespace, born = named.split()
        start = float(born)
    except ValueError:
        return None
    if UNKNOWN in (boot, boot_id()) or not start > 0:
        return None
    if boot != boot_id():
        return False
    if namespace != pid_namespace():
        return None
    return alive(pid, start)


def _stat(pid: int) -> tuple[float, str]:
    """A process's start (clock ticks since boot) and state; (0, "") when gone."""
    fields = stat_fields(pid)
    return (float(fields[19]), fields[0].decode()) if fields else (0.0, "")
