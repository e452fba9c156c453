"""Handing memory back to the system through glibc, found without starting a process."""

import platform
import subprocess

import pytest

from engine.memory import malloc

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc is what is asked")


@pytest.fixture(autouse=True)
def found_afresh():
    """Each test finds the C library itself, and leaves none found for the next."""
    malloc._glibc.cache_clear()
    yield
    malloc._glibc.cache_clear()


@glibc
def test_glibc_is_asked_without_starting_a_process(monkeypatch):
    """ctypes.util.find_library runs ldconfig: a fork of the caller, the neural voice's 82 MB after
    every piece it spoke (0.5 s of its 2.5 for 529 characters, measured)."""

    def no_process(*_args, **_named):
        raise AssertionError("a process was started to find the C library")

    monkeypatch.setattr(subprocess.Popen, "__init__", no_process)
    assert malloc.give_back_big_buffers() is True
    malloc.give_back_freed()
    malloc.give_back_freed()


def test_without_glibc_nothing_is_asked(monkeypatch):
    opened = []
    monkeypatch.setattr(malloc.sys, "platform", "darwin")
    monkeypatch.setattr(malloc.ctypes, "CDLL", lambda name, *rest: opened.append(name))
    assert malloc.give_back_big_buffers() is False
    malloc.give_back_freed()  # nothing to ask: no error
    assert opened == []


@glibc
def test_the_library_is_opened_once(monkeypatch):
    opened = []
    real = malloc.ctypes.CDLL
    monkeypatch.setattr(malloc.ctypes, "CDLL", lambda name, *rest: opened.append(name) or real(name, *rest))
    for _ in range(3):
        malloc.give_back_freed()
    assert opened == ["libc.so.6"]
