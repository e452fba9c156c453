"""Helpers the tests share: a finished generation's Result, the CLI as a subprocess, waiting for a
thing to happen (never a bare sleep)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
import wave
from dataclasses import replace
from pathlib import Path

import psutil

from engine.errors import Busy
from engine.memory.ledger import Ledger, Need
from engine.models import Attempt, Result

ROOT = Path(__file__).resolve().parents[1]
# The benchmark quotes (29, 155 and 529 characters) by name: short, medium, long.
QUOTES = {
    case["name"]: case["text"] for case in json.loads((ROOT / "benchmarks/bench-quotes.json").read_text())["cases"]
}
# About 14 s of offline speech.
LONG = (
    "Twenty years from now you will be more disappointed by the things that you didn't do than by the ones "
    "you did do. So throw off the bowlines. Sail away from the safe harbor. Catch the trade winds in your sails."
)


def result(generation_id: str, **changes) -> Result:
    base = Result(
        generation_id=generation_id, status="ok", output=Path("/data/outputs/x.mp4"), tier="high", tier_asked="auto",
        tier_reason="2048 MB available", method="ffmpeg", tts_engine="espeak", width=1920, height=1080,
        duration_s=9.4, size_bytes=700_000, video_kbps=800, audio_kbps=128, peak_rss_mb=141.0, available_mb=2048,
        app_rss_mb=60, wall_s=1.4, stage_s={"speech": 0.3, "render": 1.0},
        attempts=(Attempt("ffmpeg", "high", "ok", None, 141.0, 1.0, 1800.0),),
        timeline=tuple((i / 50, float(i % 97)) for i in range(1000)),
    )  # fmt: skip
    return replace(base, **changes)


GTTS_URL = "https://translate.google.com/_/TranslateWebserverUi/data/batchexecute"


def google_answer(audio: bytes) -> str:
    """The batchexecute answer as Google frames it, carrying `audio` base64-encoded."""
    inner = json.dumps([base64.b64encode(audio).decode()])
    payload = json.dumps([["wrb.fr", "jQ1olc", inner, None, None, None, "generic"]], separators=(",", ":"))
    return f')]}}\'\n\n{len(payload)}\n{payload}\n25\n[["e",4,null,null,154]]\n'


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()


def run_cli(*args: str, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def writes_of(monkeypatch, out: Path) -> list[list[str]]:
    """The ffmpeg runs (engine.render.ffmpeg.run, the real one) that write `out`, as they happen."""
    from engine.render import ffmpeg

    writes: list[list[str]] = []
    real_run = ffmpeg.run

    def run(args: list[str], *rest, **named) -> str:
        if str(out) in args:
            writes.append(args)
        return real_run(args, *rest, **named)

    monkeypatch.setattr(ffmpeg, "run", run)
    return writes


def wait_for(predicate, timeout_s: float = 30.0):
    """Poll `predicate` until it returns something true, and return that; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = predicate()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {predicate}"
        time.sleep(0.02)


def ffmpeg_steps(root: int) -> list[psutil.Process]:
    """The engine's own ffmpeg runs (the FFmpeg method's steps: they read no stdin) among a
    process's descendants; not imageio-ffmpeg's one-off `ffmpeg -version` check."""
    found = []
    for proc in psutil.Process(root).children(recursive=True):
        try:
            if "ffmpeg" in proc.name() and "-nostdin" in proc.cmdline() and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def stop_an_ffmpeg_step(root: int) -> psutil.Process | None:
    """One of the engine's ffmpeg runs under `root`, stopped (SIGSTOP) while it still runs, so that it
    cannot end by itself; None when none is running now (a short one may end before it is stopped)."""
    for proc in ffmpeg_steps(root):
        try:
            proc.suspend()
        except psutil.Error:
            continue
        if alive(proc):
            return proc
    return None


def alive(proc: psutil.Process | int) -> bool:
    """Is the process (or pid) still running (gone or a zombie: no)?"""
    try:
        found = psutil.Process(proc) if isinstance(proc, int) else proc
        return found.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def render_children(root_pid: int, marker: str = "engine.render.child"):
    try:
        procs = psutil.Process(root_pid).children(recursive=True)
    except psutil.Error:
        return []
    found = []
    for proc in procs:
        try:
            if marker in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            pass
    return outermost(found)


def outermost(procs: list) -> list:
    """`procs` less those whose parent is among them: a process the render child has just forked
    shows the child's command line until it execs its ffmpeg (a CI run found two 'children')."""
    pids = {proc.pid for proc in procs}
    kept = []
    for proc in procs:
        try:
            if proc.ppid() not in pids:
                kept.append(proc)
        except psutil.Error:
            pass
    return kept


def encoding(child: psutil.Process) -> bool:
    """Has MoviePy's render child started its ffmpeg writer, that is, begun encoding?"""
    try:
        return any("ffmpeg" in " ".join(p.cmdline()) for p in child.children(recursive=True))
    except psutil.Error:
        return False


def hold(book: Ledger, needs: list[Need], log: list, name: str, release: threading.Event, waits=None):
    """Another requester on the host's ledger, in a thread: admitted for `needs`, it holds its room
    until `release` (10 s at most), logging "<name> in <tier>" and "<name> out" (or the Busy it got)."""

    def run():
        try:
            with book.admit(needs, on_wait=(waits.append if waits is not None else None)) as grant:
                log.append(f"{name} in {grant.need.label}")
                release.wait(10)
                log.append(f"{name} out")
        except Busy as exc:
            log.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread
