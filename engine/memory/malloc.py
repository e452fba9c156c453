"""Big buffers given back to the system when freed: glibc's mmap threshold held at 2 MB.

glibc raises its mmap threshold to the size of the largest block freed, up to 32 MB; after the
first frame or card image is freed (3 to 6 MB at 1080p), later ones come from heaps that keep
their pages, one heap per thread that touched them. Measured:
- the CLI making a 1080p still card held 63 to 75 MB during the render, 42 to 51 MB without;
- the FFmpeg method's encode of word captions at 1080x1920: 70 to 88 MB, 50 to 53 MB without
  (0.4 s slower over 140 pictures; a threshold of 128 kB cost 0.6 s);
- MoviePy's ffmpeg on a still card: 155 MB at 10 s and 188 MB at 300 s, 133 and 135 without.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
THRESHOLD_BYTES = 2 << 20
# For the processes we start (ffmpeg, MoviePy's child and its ffmpeg): glibc reads it as they start.
CHILD_ENV = (("MALLOC_MMAP_THRESHOLD_", str(THRESHOLD_BYTES)),)


def give_back_freed() -> None:
    """Hand the heap memory this process has freed back to the system now (glibc's malloc_trim):
    a child that frees a lot at once (the neural voice after loading, and after each piece) keeps
    its peak to that of one piece."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: the memory is reused, not returned
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)


def give_back_big_buffers() -> bool:
    """Fix this process's mmap threshold; False where there is no glibc (macOS, musl) to ask."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False
