"""Faults survived: killed renders, missing or failing ffmpeg, a full disk, a locked history,
an app killed mid-generation, a visitor who leaves. Each ends in a sentence or a video."""

import contextlib
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from engine.errors import HistoryUnavailable, RenderFailed
from engine.history import HistoryStore
from engine.models import Request
from engine.pipeline import generate
from engine.settings import Settings
from tests.helpers import (
    LONG,
    ROOT,
    alive,
    encoding,
    render_children,
    run_cli,
    stop_an_ffmpeg_step,
    wait_for,
)


def test_a_render_child_killed_mid_encode_falls_back(settings):
    outcome = {}
    request = Request(LONG, tier="high", method="moviepy")
    worker = threading.Thread(target=lambda: outcome.update(result=generate(request, settings)))
    worker.start()
    [child] = wait_for(lambda: render_children(os.getpid()))
    wait_for(lambda: encoding(child))  # mid-encode
    os.kill(child.pid, signal.SIGKILL)
    worker.join(120)
    result = outcome["result"]
    assert result.attempts[0].status == "crashed" and "SIGKILL" in result.attempts[0].error
    assert result.status == "ok" and result.method == "ffmpeg"


def test_ffmpeg_missing_is_a_sentence(settings, monkeypatch):
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", "/nonexistent/ffmpeg")
    with pytest.raises(RenderFailed, match="ffmpeg is missing at /nonexistent/ffmpeg; reinstall") as caught:
        generate(Request("Stay hungry.", tier="low"), settings)
    result = caught.value.result
    assert result.status == "error" and not result.attempts  # mastering the speech needs it first
    assert not settings.outputs_dir.exists()


def test_ffmpeg_failing_is_a_sentence(settings, monkeypatch, tmp_path):
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho 'Conversion failed: the encoder broke' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake))
    with pytest.raises(RenderFailed, match="ffmpeg failed: Conversion failed: the encoder broke"):
        generate(Request("Stay hungry.", tier="low"), settings)


def test_a_fallback_whose_sound_cannot_be_written_is_a_failed_attempt_with_a_sentence(settings, monkeypatch, tmp_path):
    """The emergency render, reached as a fallback, writes the sound again for its 32k AAC; an
    ffmpeg that fails on that write (and only on it) fails that attempt, which says why."""
    from engine.render.ffmpeg import ffmpeg_exe

    fake = tmp_path / "ffmpeg"
    fake.write_text(
        "#!/bin/sh\n"
        'for arg in "$@"; do case "$arg" in *"]anull,"*) echo "Conversion failed: no room" >&2; exit 1;; esac; done\n'
        f'exec {ffmpeg_exe()} "$@"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake))
    request = Request("Stay hungry. Stay foolish.", tier="high", method="ffmpeg", crash_methods=("ffmpeg",))
    with pytest.raises(RenderFailed, match="every render method failed") as caught:
        generate(request, settings)
    attempts = [(a.method, a.status, a.error) for a in caught.value.result.attempts]
    assert attempts[0][:2] == ("ffmpeg", "crashed")
    assert attempts[1] == (
        "emergency", "failed", "could not write the sound for its 32k AAC: ffmpeg failed: Conversion failed: no room."
    )  # fmt: skip


def generate_under_file_limit(data: Path, *flags: str) -> subprocess.CompletedProcess:
    """The CLI under a 1.5 MB file size limit: speech and cards fit, a 1080p video does not."""

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_500_000, 1_500_000))

    return subprocess.run(
        [sys.executable, "-m", "engine", "generate", LONG + " " + LONG, "--tier", "high", "--json", *flags],
        cwd=ROOT, env={**os.environ, "DATA_DIR": str(data), "TTS_ENGINE": "espeak"},
        capture_output=True, text=True, timeout=240, preexec_fn=limit,
    )  # fmt: skip


def test_a_full_disk_falls_back_to_the_smaller_emergency_video(tmp_path):
    done = generate_under_file_limit(tmp_path / "data")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    first, last = report["attempts"][0], report["attempts"][-1]
    assert first["status"] == "failed" and "the disk is full or the file size limit was reached" in first["error"]
    assert last["method"] == "emergency" and last["status"] == "ok"
    assert not list((tmp_path / "data" / "tmp").rglob("*"))


def test_a_full_disk_without_fallback_fails_cleanly(tmp_path):
    data = tmp_path / "data"
    done = generate_under_file_limit(data, "--method", "ffmpeg", "--no-fallback")
    assert done.returncode == 1, done.stderr
    assert "the disk is full or the file size limit was reached" in json.loads(done.stdout)["error"]
    assert not (data / "outputs").exists() or not list((data / "outputs").iterdir())  # no partial MP4
    assert not list((data / "tmp").rglob("*"))


def test_a_locked_history_does_not_stop_a_generation(settings, tmp_path):
    path = tmp_path / "locked.db"
    store = HistoryStore(f"sqlite:///{path}", busy_timeout_s=0.3)
    blocker = sqlite3.connect(path, timeout=0.1)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        result = generate(Request("Stay hungry.", tier="low"), settings, store=store)
    finally:
        blocker.rollback()
        blocker.close()
    assert result.status == "ok" and result.output.exists()
    assert store.generations() == []  # no row at all rather than half a row
    store.close()


def test_an_unreadable_history_plans_from_the_prior_and_the_video_is_made(tmp_path):
    """Over MAX_STORAGE_MB too: the cleanup after the video cannot read the history either."""
    settings = Settings.from_env({"DATA_DIR": str(tmp_path / "data"), "TTS_ENGINE": "espeak", "MAX_STORAGE_MB": "1"})
    settings.outputs_dir.mkdir(parents=True)
    (settings.outputs_dir / "old.mp4").write_bytes(b"\0" * 2_000_000)
    path = tmp_path / "broken.db"
    store = HistoryStore(f"sqlite:///{path}")
    for stale in tmp_path.glob("broken.db*"):
        stale.unlink()
    path.write_bytes(b"not a database " * 512)
    result = generate(Request("Stay hungry.", tier="low"), settings, store=store)
    assert result.status == "ok" and result.output.exists()
    with pytest.raises(HistoryUnavailable, match=r"^the history database could not be read or written \(file is not"):
        store.generations()
    store.close()


def test_an_app_killed_mid_generation_leaves_no_orphan_and_is_marked_on_restart(tmp_path):
    data = tmp_path / "data"
    env = {**os.environ, "DATA_DIR": str(data), "TTS_ENGINE": "espeak"}
    app = subprocess.Popen(
        [sys.executable, "-m", "engine", "generate", LONG, "--tier", "high", "--method", "moviepy"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    [child] = wait_for(lambda: render_children(app.pid))
    wait_for(lambda: encoding(child))  # mid-encode
    tree = [p.pid for p in psutil.Process(app.pid).children(recursive=True)]
    for grandchild in child.children(recursive=True):  # MoviePy's ffmpeg, stopped: it cannot notice its
        with contextlib.suppress(psutil.NoSuchProcess):  # input closing, so only a kill ends it (a probe
            grandchild.suspend()  # that has just ended is not it)
    app.kill()
    app.wait()
    try:
        # The render child and MoviePy's own ffmpeg go with the app: the parent-death signal, and the
        # child taking its process group down with it.
        wait_for(lambda: not [pid for pid in tree if alive(pid)], timeout_s=10)
    finally:
        for pid in tree:  # a stopped process left behind by a failure here would stay forever
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
    done = run_cli("storage", "--json", env={"DATA_DIR": str(data)})  # the restart
    assert done.returncode == 0
    store = HistoryStore(f"sqlite:///{data / 'history.db'}")
    [row] = store.generations()
    store.close()
    assert row.status == "interrupted" and "stopped before the generation finished" in row.error
    assert not list((data / "tmp").iterdir())


def test_a_cli_killed_during_the_ffmpeg_method_leaves_no_ffmpeg_running(tmp_path):
    """SIGKILL gives the CLI no chance to clean up: the kernel ends its bare ffmpeg (parent-death
    signal). The ffmpeg is stopped first, so it cannot end by itself: without the signal it stays."""
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "TTS_ENGINE": "espeak"}
    cli = subprocess.Popen(
        [sys.executable, "-m", "engine", "generate", LONG, "--method", "ffmpeg", "--no-fallback"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    step = None
    try:
        step = wait_for(lambda: stop_an_ffmpeg_step(cli.pid), 120)
        cli.kill()
        cli.wait()
        wait_for(lambda: not alive(step), timeout_s=10)
    finally:
        cli.kill()
        cli.wait()
        if step is not None and alive(step):  # stopped, and under init now: nothing else would end it
            step.kill()


def test_an_unwritable_data_dir_is_a_sentence(settings, tmp_path):
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    with pytest.raises(RenderFailed, match="could not write the video's files"):
        generate(Request("Stay hungry.", tier="low"), replace(settings, data_dir=blocked))
