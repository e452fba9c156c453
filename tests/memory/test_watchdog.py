"""The watchdog's wait for a step: woken by the process's end, stopped at its time, and the same
where the kernel has no pidfds (its fallback)."""

import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import pytest

from engine.errors import RenderFailed
from engine.memory import watchdog
from engine.memory.watchdog import Progress, Step, run_step
from tests.helpers import alive, wait_for


def _no_pidfd(_pid: int) -> int:
    raise OSError(38, "Function not implemented")


@pytest.fixture(params=["pidfd", "old kernel", "not Linux"])
def kernel(request, monkeypatch):
    if request.param == "old kernel":
        monkeypatch.setattr(os, "pidfd_open", _no_pidfd)
    elif request.param == "not Linux":
        monkeypatch.delattr(os, "pidfd_open")
    return request.param


def _python(code: str) -> Step:
    return Step([sys.executable, "-c", code], is_ffmpeg=False)


def test_a_step_that_ends_is_ok(kernel):
    status, reason, _peak = run_step(_python("pass"), 500, lambda *_: None, remaining_s=30, timeout_s=30)
    assert (status, reason) == ("ok", None)


def test_a_step_that_fails_gives_its_reason(kernel):
    step = _python("import sys; sys.exit('no such card')")
    status, reason, _peak = run_step(step, 500, lambda *_: None, remaining_s=30, timeout_s=30)
    assert (status, reason) == ("failed", "no such card.")


def test_a_step_whose_input_cannot_be_readied_fails_with_that_reason_and_never_starts(tmp_path):
    started = tmp_path / "started"

    def ready() -> None:
        raise RenderFailed("the sound's AAC encode was not the mono stream expected")

    touch = [sys.executable, "-c", f"open({str(started)!r}, 'w')"]
    step = Step(touch, is_ffmpeg=False, before=ready)
    status, reason, peak = run_step(step, 500, lambda *_: None, remaining_s=30, timeout_s=30)
    assert (status, reason, peak) == ("failed", "the sound's AAC encode was not the mono stream expected", 0.0)
    assert not started.exists()
    readied = []
    step = Step(touch, is_ffmpeg=False, before=lambda: readied.append(1))
    assert run_step(step, 500, lambda *_: None, remaining_s=30, timeout_s=30)[:2] == ("ok", None)
    assert readied == [1] and started.exists()


def test_a_step_past_its_time_is_stopped_with_its_group(kernel, tmp_path):
    pid_file = tmp_path / "child.pid"
    # A child of the step's own, which must die with its group.
    code = (
        "import subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(60)"
    )
    status, reason, _peak = run_step(_python(code), 500, lambda *_: None, remaining_s=3, timeout_s=3)
    assert (status, reason) == ("timeout", "stopped after 3 s without finishing")
    grandchild = int(pid_file.read_text())
    wait_for(lambda: not alive(grandchild), timeout_s=10)  # the group's SIGKILL is on its way


def test_wait_says_whether_the_process_ended(kernel):
    quick = subprocess.Popen([sys.executable, "-c", "pass"])
    assert watchdog.wait(quick, 30) is True
    assert quick.returncode == 0
    slow = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert watchdog.wait(slow, 0.2) is False
        assert slow.returncode is None
    finally:
        slow.kill()
        slow.wait()


def test_wait_sees_the_end_when_descriptors_pass_1024():
    """A long-lived server holds many descriptors: the pidfd's number may pass what select() takes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), max(hard, 1200)))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        quick = subprocess.Popen([sys.executable, "-c", "pass"])
        assert watchdog.wait(quick, 30) is True and quick.returncode == 0
    finally:
        for handle in held:
            os.close(handle)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextmanager
def _reported() -> Iterator[tuple[Progress, BinaryIO]]:
    """A Progress reading what the test writes as ffmpeg's stdout; the pipe closed (ffmpeg ended)
    and the reader done on leaving."""
    read_end, write_end = os.pipe()
    progress = Progress()
    reader = threading.Thread(target=progress.read, args=(os.fdopen(read_end, "rb"),))
    reader.start()
    with os.fdopen(write_end, "wb", buffering=0) as ffmpeg_stdout:
        yield progress, ffmpeg_stdout
    reader.join()


def test_progress_waits_for_a_new_count_not_a_repeated_line():
    """ffmpeg prints its frame count every period, changed or not: a feed that took a repeated line
    for progress ran ahead of the encoder, and ffmpeg queued its raw frames (91 MB, not 49)."""
    with _reported() as (progress, ffmpeg_stdout):

        def report() -> None:
            for _ in range(20):
                ffmpeg_stdout.write(b"frame=2\nprogress=continue\n")
                time.sleep(0.01)
            ffmpeg_stdout.write(b"frame=3\n")

        writer = threading.Thread(target=report)
        writer.start()
        progress.wait_for(3, stall_s=5)
        assert progress.frames == 3
        writer.join()
    assert progress.frames > 3  # ended: nothing more to wait for


def test_progress_that_stalls_lets_the_writer_on_and_says_so():
    """An ffmpeg that says nothing new (it wants more input first) never holds the writer for
    longer than the stall."""
    with _reported() as (progress, ffmpeg_stdout):
        ffmpeg_stdout.write(b"frame=2\n")
        assert progress.wait_for(2, stall_s=5) is True
        ffmpeg_stdout.write(b"frame=2\n" * 5)
        assert progress.wait_for(3, stall_s=0.2) is False and progress.frames == 2
    assert progress.wait_for(10**6) is True  # ended: nothing more to wait for
