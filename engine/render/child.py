"""A MoviePy attempt's child process: `python -m engine.render.child SPEC.json`.

Runs the MoviePy method on one render spec. Exit 0 when the output is written; otherwise exit 1
with one line on stderr saying why. The parent watches this process group. `run_child`
serves any render function the same way (the benchmark's plain MoviePy baseline uses it).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from engine.errors import QuoteError
from engine.render.lifetime import take_group_down_with_parent
from engine.render.spec import RenderSpec


def main(argv: list[str]) -> int:
    from engine.render import moviepy_method

    return run_child(argv, moviepy_method.render)


def run_child(argv: list[str], render: Callable[[RenderSpec], object]) -> int:
    """Read the render spec named by `argv[1]`, render it, and exit with a one-line reason on failure."""
    take_group_down_with_parent()  # MoviePy's own ffmpeg goes too if the app is killed
    spec = RenderSpec.from_json(Path(argv[1]).read_text())
    if spec.crash:
        import os

        os.abort()  # a method that dies hard, for testing the chain
    try:
        render(spec)
    except QuoteError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except MemoryError:
        print("ran out of memory while rendering", file=sys.stderr)
        return 1
    except Exception as exc:  # any failure of a method is one line for the parent
        print(f"{type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
