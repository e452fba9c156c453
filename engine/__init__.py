"""Quote to Speak engine: a quote becomes a narrated MP4 under a memory budget.

Import what you need from the submodules; this package imports nothing heavy on
purpose, so a render child that needs only ffmpeg starts in a few megabytes.
"""

import os

# NumPy's OpenBLAS starts a thread a core as it is imported, for matrix work we never do: one
# thread took 0.15 to 0.18 s less CPU a generation (the CLI's still card, ten pairs in turn).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
