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

import ctypes
import functools
import sys

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
THRESHOLD_BYTES = 2 << 20
# For the processes we start (ffmpeg, MoviePy's child and its ffmpeg): glibc reads it as they start.
CHILD_ENV = (("MALLOC_MMAP_THRESHOLD_", str(THRESHOLD_BYTES)),)
# ffmpeg's threads (its demuxers, filters, encoders) each take a malloc heap of their own, and what
# those heaps keep changes from run to run. With one heap, the FFmpeg methods' ffmpeg holds less and
# is no slower: the emergency render of 60 s 14.6 MB against 17.35 (medians of eight runs; 15.1 to
# 17.4 MB), the FFmpeg method at 1080p 0.8 MB less, the still card end to end 1.1 MB (measured in turn).
FFMPEG_ENV = (*CHILD_ENV, ("MALLOC_ARENA_MAX", "1"))


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """glibc, by its soname; None where there is none (macOS, musl: the memory is reused, not
    returned). Not ctypes.util.find_library: it runs ldconfig, a fork of this process each time
    (of the neural voice's 82 MB after each piece: 0.5 s of its 2.5 for 529 characters, and a
    tree that briefly read 164 MB)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 (musl has neither)
    except (OSError, AttributeError):
        return None
    return libc


def give_back_freed() -> None:
    """Hand the heap memory this process has freed back to the system now (glibc's malloc_trim):
    a child that frees a lot at once (the neural voice after loading, and after each piece) keeps
    its peak to that of one piece."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def give_back_big_buffers() -> bool:
    """Fix this process's mmap threshold; False where there is no glibc (macOS, musl) to ask."""
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES))
