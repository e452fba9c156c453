"""Files written whole or not at all."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def write_aside(path: Path, write: Callable[[Path], object]) -> None:
    """`path` written by `write` to a hidden file beside it, then renamed over it: a reader (another
    process's first use, a download) never finds half a file, and a failed write leaves none."""
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
