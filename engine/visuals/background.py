"""Card backgrounds: a small named palette of solids and gradients, or an uploaded picture.

Uploads are checked by content, never by name: JPEG, PNG or WebP only, at most
MAX_UPLOAD_BYTES and MAX_UPLOAD_PIXELS (a decompression bomb is refused before it is
decoded), then cropped to fill the card and darkened so white text stays readable.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from engine.errors import InvalidInput

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_PIXELS = 25_000_000  # 75 MB decoded as RGB: the most a 512 MB container can spare
FORMATS = {"JPEG", "PNG", "WEBP"}
# name: (top colour, bottom colour); equal colours are a solid.
PALETTE: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "midnight": ((20, 24, 48), (58, 28, 82)),
    "ocean": ((8, 32, 60), (10, 86, 104)),
    "forest": ((14, 40, 28), (42, 78, 40)),
    "ember": ((60, 16, 20), (128, 54, 22)),
    "graphite": ((32, 34, 40), (32, 34, 40)),
    "black": ((0, 0, 0), (0, 0, 0)),
}
DEFAULT = "midnight"


@dataclass(frozen=True)
class Background:
    name: str = DEFAULT
    image: bytes | None = None  # a validated upload (see `check_upload`)


def background(name: str = DEFAULT, upload: bytes | None = None) -> Background:
    if name not in PALETTE:
        raise InvalidInput(f"background {name!r} is not offered; choose one of: {', '.join(PALETTE)}")
    if upload is not None:
        check_upload(upload)
    return Background(name, upload)


def check_upload(data: bytes) -> None:
    """InvalidInput unless `data` is a JPEG, PNG or WebP of sane size, by its content."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidInput(f"the background image is {len(data) / 1e6:.1f} MB; upload one under 10 MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                kind, (width, height) = image.format, image.size
                if kind not in FORMATS:
                    raise InvalidInput(f"the background is a {kind} image; upload a JPEG, PNG or WebP")
                if width * height > MAX_UPLOAD_PIXELS:
                    limit = MAX_UPLOAD_PIXELS // 1_000_000
                    raise InvalidInput(
                        f"the background is {width}×{height} pixels; upload one under {limit} megapixels"
                    )
                image.verify()  # structure and checksums
            with Image.open(io.BytesIO(data)) as image:
                image.draft("RGB", (2048, 2048))  # JPEG decodes at a reduced scale: bounded memory
                image.load()  # the pixels themselves: a truncated file fails here
    except InvalidInput:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidInput("the background image is too large to decode safely; upload a smaller one") from None
    except Exception:  # Pillow raises many kinds for a file that is not an image
        raise InvalidInput("the background file is not a readable JPEG, PNG or WebP image") from None


def render_background(choice: Background | None, size: tuple[int, int]) -> Image.Image:
    choice = choice or Background()
    if choice.image is not None:
        return _picture(choice.image, size)
    top, bottom = PALETTE[choice.name]
    return _gradient(top, bottom, size)


def _picture(data: bytes, size: tuple[int, int]) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", size)  # JPEG: decode at a reduced scale when it is much larger than the card
        picture = ImageOps.fit(ImageOps.exif_transpose(image).convert("RGB"), size, Image.Resampling.LANCZOS)
    picture = picture.filter(ImageFilter.GaussianBlur(radius=max(1, min(size) // 300)))
    return ImageEnhance.Brightness(picture).enhance(0.42)  # white text over it stays above 4.5:1


def _gradient(top, bottom, size: tuple[int, int]) -> Image.Image:
    """A vertical gradient, built as one column and stretched: no per-pixel Python loop."""
    column = Image.new("RGB", (1, 256))
    for i in range(256):
        column.putpixel((0, i), tuple(a + (b - a) * i // 255 for a, b in zip(top, bottom, strict=True)))
    return column.resize(size, Image.Resampling.BILINEAR)
