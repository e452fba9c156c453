"""The quote card: text wrapped and sized to fit, drawn with Pillow on a gradient."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from engine.errors import InvalidInput

FONT_DIR = Path(__file__).parent / "fonts"
QUOTE_FONT = FONT_DIR / "DejaVuSerif.ttf"
AUTHOR_FONT = FONT_DIR / "DejaVuSans.ttf"
TOP_COLOUR = (20, 24, 48)  # dark navy to deep violet: white text stays above 12:1 contrast
BOTTOM_COLOUR = (58, 28, 82)
TEXT_COLOUR = (250, 250, 245)
AUTHOR_COLOUR = (214, 204, 236)


@dataclass(frozen=True)
class Layout:
    lines: tuple[str, ...]
    font_px: int
    author_px: int


@cache
def _codepoints(path: Path) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    with TTFont(path, lazy=True) as font:
        return frozenset(font.getBestCmap())


def check_coverage(text: str, font: Path = QUOTE_FONT) -> None:
    """InvalidInput naming the characters the bundled font cannot draw (no tofu boxes)."""
    covered = _codepoints(font)
    missing = sorted({ch for ch in text if not ch.isspace() and ord(ch) not in covered})
    if missing:
        shown = " ".join(f"{ch} (U+{ord(ch):04X} {unicodedata.name(ch, 'unnamed')})" for ch in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise InvalidInput(f"the card font cannot draw {shown}{more}; remove or replace these characters")


def draw_card(text: str, author: str, size: tuple[int, int], out: Path) -> Path:
    """Draw the card as an RGB PNG at `size`; InvalidInput when a character has no glyph."""
    check_coverage(text + author)
    width, height = size
    image = _gradient(width, height)
    draw = ImageDraw.Draw(image)
    margin_x, margin_y = int(width * 0.08), int(height * 0.1)
    box_w, box_h = width - 2 * margin_x, height - 2 * margin_y
    layout = fit(text, author, box_w, box_h)
    quote_font = ImageFont.truetype(str(QUOTE_FONT), layout.font_px)
    author_font = ImageFont.truetype(str(AUTHOR_FONT), layout.author_px)
    line_h = int(layout.font_px * 1.3)
    author_h = int(layout.author_px * 2.2) if author else 0
    y = margin_y + (box_h - line_h * len(layout.lines) - author_h) // 2
    for line in layout.lines:
        draw.text((width // 2, y), line, font=quote_font, fill=TEXT_COLOUR, anchor="ma")
        y += line_h
    if author:
        draw.text((width // 2, y + layout.author_px), f"— {author}", font=author_font, fill=AUTHOR_COLOUR, anchor="ma")
    image.save(out, format="PNG", compress_level=1)  # fast: the file lives only for this job
    return out


def fit(text: str, author: str, box_w: int, box_h: int) -> Layout:
    """The largest font size whose wrapped lines (and author line) fit the box."""
    low, high = 10, max(11, box_h // 4)
    best = Layout(tuple(_wrap(text, _font(low), box_w)), low, max(10, int(low * 0.6)))
    while low <= high:
        size = (low + high) // 2
        author_px = max(10, int(size * 0.6))
        lines = _wrap(text, _font(size), box_w)
        needed = int(size * 1.3) * len(lines) + (int(author_px * 2.2) if author else 0)
        author_fits = not author or _font(author_px, AUTHOR_FONT).getlength(f"— {author}") <= box_w
        if needed <= box_h and author_fits:
            best, low = Layout(tuple(lines), size, author_px), size + 1
        else:
            high = size - 1
    return best


@cache
def _font(size: int, path: Path = QUOTE_FONT) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Greedy word wrap; a word wider than the line is broken between characters."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ""
            for ch in word:
                if font.getlength(line + ch) > width and line:
                    lines.append(line)
                    line = ""
                line += ch
        lines.append(line)
    return [line for line in lines if line] or [""]


def _gradient(width: int, height: int) -> Image.Image:
    """A vertical gradient, built as one column and stretched: no per-pixel Python loop."""
    column = Image.new("RGB", (1, 256))
    for i in range(256):
        column.putpixel((0, i), tuple(a + (b - a) * i // 255 for a, b in zip(TOP_COLOUR, BOTTOM_COLOUR, strict=True)))
    return column.resize((width, height), Image.Resampling.BILINEAR)
