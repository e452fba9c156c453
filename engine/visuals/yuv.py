"""RGB to the 4:2:0 YUV that x264 encodes, as ffmpeg's default conversion makes it (BT.601,
limited range), so that a card handed over raw looks as one read from a PNG file.

Raw RGB would be twice the bytes, and ffmpeg queues several frames between its threads: at
1080x1920 converting in ffmpeg held 60 MB more (measured); here only a caption's band is converted.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

ROWS = 64  # converted at a time: a whole 1080p frame at once held 50 MB of int32 temporaries


def yuv420(image: Image.Image) -> bytes:
    """An RGB image (width and height even) as one yuv420p frame: Y, then U, then V."""
    return bytes(Frame(image).data)


def _planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Y plane, and the U and V planes at half the width and height (each 2x2 block averaged)."""
    r, g, b = (rgb[..., channel].astype(np.int32) for channel in range(3))
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    # Chroma from the mean of each 2x2 block: the sum of four, rounded, in the same fixed point.
    r4, g4, b4 = (c[0::2, 0::2] + c[1::2, 0::2] + c[0::2, 1::2] + c[1::2, 1::2] for c in (r, g, b))
    u = ((-38 * r4 - 74 * g4 + 112 * b4 + 512) >> 10) + 128
    v = ((112 * r4 - 94 * g4 - 18 * b4 + 512) >> 10) + 128
    return y.astype(np.uint8), u.astype(np.uint8), v.astype(np.uint8)


class Frame:
    """One yuv420p frame in a buffer, whose rows can be replaced in place."""

    def __init__(self, image: Image.Image) -> None:
        width, height = image.size
        self._adopt(np.empty(width * height * 3 // 2, dtype=np.uint8), width, height)
        self.put(0, image)

    def _adopt(self, data: np.ndarray, width: int, height: int) -> None:
        """Take `data` as the frame's buffer, with its three planes as views into it."""
        area = width * height
        self.data = data
        self.y = data[:area].reshape(height, width)
        self.u = data[area : area * 5 // 4].reshape(height // 2, width // 2)
        self.v = data[area * 5 // 4 :].reshape(height // 2, width // 2)

    def copy(self) -> Frame:
        """Another frame with the same pixels, in a buffer of its own."""
        twin = Frame.__new__(Frame)
        twin._adopt(self.data.copy(), self.y.shape[1], self.y.shape[0])
        return twin

    def put(self, top: int, image: Image.Image) -> None:
        """Rows from `top` (even) replaced by `image` (the full width, an even number of rows),
        converted ROWS rows at a time."""
        for row in range(0, image.height, ROWS):
            y, u, v = _planes(np.asarray(image.crop((0, row, image.width, min(image.height, row + ROWS)))))
            at = top + row
            self.y[at : at + y.shape[0]] = y
            self.u[at // 2 : at // 2 + u.shape[0]] = u
            self.v[at // 2 : at // 2 + v.shape[0]] = v

    def copy_rows(self, other: Frame, top: int, bottom: int) -> None:
        """Rows [top, bottom) (both even) taken from `other`."""
        self.y[top:bottom] = other.y[top:bottom]
        self.u[top // 2 : bottom // 2] = other.u[top // 2 : bottom // 2]
        self.v[top // 2 : bottom // 2] = other.v[top // 2 : bottom // 2]
