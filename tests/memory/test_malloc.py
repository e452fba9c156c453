"""Handing memory back to the system through glibc, found without starting a process."""

import platform
import subprocess

import pytest

from engine.memory import malloc

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc is what is asked")


@glibc
def test_glibc_is_asked_without_starting_a_process(monkeypatch):
    """ctypes.util.find_library runs ldconfig: a fork of the caller, the neural voice's 82 MB after
    every piece it spoke (0.5 s of its 2.5 for 529 characters, measured)."""

    def no_process(*_args, **_named):
        raise AssertionError("a process was started to find the C library")

    malloc._glibc.cache_clear()
    monkeypatch.setattr(subprocess.Popen, "__init__", no_process)
    try:
        assert malloc.give_back_big_buffers() is True
        malloc.give_back_freed()
        malloc.give_back_freed()
    finally:
        malloc._glibc.cache_clear()


def test_without_glibc_nothing_is_asked(monkeypatch):
    malloc._glibc.cache_clear()
    opened = []
    monkeypatch.setattr(malloc.sys, "platform", "darwin")
    monkeypatch.setattr(malloc.ctypes, "CDLL", lambda name, *rest: opened.append(name))
    try:
        assert malloc.give_back_big_buffers() is False
        malloc.give_back_freed()  # nothing to ask: no error
        assert opened == []
    finally:
        malloc._glibc.cache_clear()


@glibc
def test_the_library_is_opened_once(monkeypatch):
    malloc._glibc.cache_clear()
    opened = []
    real = malloc.ctypes.CDLL
    monkeypatch.setattr(malloc.ctypes, "CDLL", lambda name, *rest: opened.append(name) or real(name, *rest))
    try:
        for _ in range(3):
            malloc.give_back_freed()
        assert opened == ["libc.so.6"]
    finally:
        malloc._glibc.cache_clear()
