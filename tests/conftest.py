"""Shared fixtures: a fresh data folder and settings, no outside network, nothing left behind."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import psutil
import pytest

from engine.history import HistoryStore
from engine.render import ffmpeg
from engine.settings import Settings
from engine.speech.base import SpeechOrder
from engine.speech.espeak import EspeakEngine


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"DATA_DIR": str(tmp_path / "data"), "TTS_ENGINE": "espeak"})


@pytest.fixture(scope="session")
def voices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests' neural voice is saved: once for the session (its first use is tested apart)."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def store(settings: Settings):
    """A fresh history store, the SQLite file in the test's data folder."""
    store = HistoryStore.open(settings)
    yield store
    store.close()


@pytest.fixture(autouse=True)
def _no_outside_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only loopback: a test that reaches for the internet fails at once instead of hanging."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address) -> None:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and not _is_loopback(host):
            raise OSError(f"test tried to reach {host}; tests use loopback only")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name to resolve: outside


@pytest.fixture(autouse=True)
def _nothing_left_behind(request: pytest.FixtureRequest):
    """After every test: no child process of the test run, no job temp folder."""
    temp = request.getfixturevalue("settings").temp_dir if "settings" in request.fixturenames else None
    yield
    from tests.server import LONG_LIVED

    shared = {p for pid in LONG_LIVED if psutil.pid_exists(pid) for p in _tree(pid)}
    children = [p for p in psutil.Process().children(recursive=True) if p.pid not in shared]
    _, alive = psutil.wait_procs(children, timeout=3)
    for proc in alive:
        proc.kill()
    assert not alive, f"processes outlived the test: {[p.pid for p in alive]}"
    if temp is not None:
        leftovers = list(temp.rglob("*")) if temp.exists() else []
        assert not leftovers, f"temp files left behind: {leftovers}"


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 2 s of real offline speech, made once for the session."""
    folder = tmp_path_factory.mktemp("speech")
    return EspeakEngine().synthesize(SpeechOrder("Stay hungry. Stay foolish.", "en", folder)).path


@pytest.fixture(scope="session")
def speech_mp3(speech_wav: Path) -> bytes:
    """The same speech as MP3 bytes, the way gTTS delivers audio."""
    mp3 = speech_wav.with_suffix(".mp3")
    ffmpeg.run(["-i", str(speech_wav), "-c:a", "libmp3lame", "-b:a", "32k", str(mp3)])
    return mp3.read_bytes()


def _tree(pid: int) -> set[int]:
    try:
        root = psutil.Process(pid)
        return {pid, *(p.pid for p in root.children(recursive=True))}
    except psutil.Error:
        return set()
