"""Fonts and text direction: which bundled font draws a text, and which way it runs.

One font draws a whole quote: the first in FONT_CHAIN that covers every character.
Pillow's Raqm layout (HarfBuzz, FriBiDi) shapes Arabic and orders right-to-left text;
lines are wrapped at spaces, or between characters in scripts written without them.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import ImageFont, features

from engine.errors import InvalidInput

FONT_DIR = Path(__file__).parent / "fonts"
AUTHOR_FONT = FONT_DIR / "DejaVuSans.ttf"
CJK_FONT = FONT_DIR / "DroidSansFallbackFull.ttf"
# Most specific first: DejaVu Sans also draws Arabic and Hebrew, but Noto draws them better;
# it stays for mixed Latin and Arabic or Hebrew, which Raqm orders and shapes line by line.
FONT_CHAIN = (
    FONT_DIR / "DejaVuSerif.ttf",
    FONT_DIR / "NotoSansArabic-Regular.ttf",
    FONT_DIR / "NotoSansHebrew-Regular.ttf",
    FONT_DIR / "NotoSansDevanagari-Regular.ttf",
    FONT_DIR / "NotoSansThai-Regular.ttf",
    FONT_DIR / "DejaVuSans.ttf",
    CJK_FONT,
)
_SHARED = set(" \t\n0123456789.,;:!?'\"()-–—…«»“”‘’%/&")  # punctuation any font is asked to draw
# Most quotes are written in these, which the first font draws (tested): such a quote needs no
# font read, which saves fontTools' import and the cmap's parse (84 ms) before the speech starts.
_FIRST_FONT_DRAWS = frozenset([*range(0x21, 0x7F), *range(0xA1, 0x100), *map(ord, "–—‘’‚“”„…•")])


@dataclass(frozen=True)
class Script:
    font: Path
    rtl: bool  # right-to-left: Arabic, Hebrew


@cache
def codepoints(path: Path) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    with TTFont(path, lazy=True) as font:
        return frozenset(font.getBestCmap())


def script_for(text: str) -> Script:
    """The font that draws all of `text` and its direction; InvalidInput naming what cannot be drawn."""
    # Format characters (joiners, marks) are invisible: a font need not draw them.
    needed = {ch for ch in text if not ch.isspace() and unicodedata.category(ch) != "Cf"}
    if all(ord(ch) in _FIRST_FONT_DRAWS for ch in needed):
        return Script(FONT_CHAIN[0], rtl=False)
    for path in FONT_CHAIN:
        covered = codepoints(path)
        if all(ord(ch) in covered for ch in needed):
            rtl = any(unicodedata.bidirectional(ch) in ("R", "AL") for ch in needed)
            if rtl and not features.check("raqm"):
                raise InvalidInput("right-to-left text needs Pillow with Raqm layout, which this install lacks")
            return Script(path, rtl)
    raise InvalidInput(_uncovered_message(needed))


def _uncovered_message(needed: set[str]) -> str:
    everything = frozenset().union(*(codepoints(p) for p in FONT_CHAIN))
    missing = sorted(ch for ch in needed if ord(ch) not in everything)
    if missing:
        shown = " ".join(f"{ch} (U+{ord(ch):04X} {unicodedata.name(ch, 'unnamed')})" for ch in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        return f"the card fonts cannot draw {shown}{more}; remove or replace these characters"
    scripts = sorted({_script_name(ch) for ch in needed if ch not in _SHARED} - {"other"})
    return f"mixing {' and '.join(scripts)} text on one card is not supported; write the quote and author in one script"


def _script_name(ch: str) -> str:
    name = unicodedata.name(ch, "")
    for script in ("LATIN", "ARABIC", "HEBREW", "DEVANAGARI", "THAI", "CJK", "HIRAGANA", "KATAKANA", "HANGUL",
                   "GREEK", "CYRILLIC"):  # fmt: skip
        if name.startswith(script):
            return script if script == "CJK" else script.capitalize()
    return "other"


def spaced(text: str) -> bool:
    """Is the text written with spaces between words (so lines break only at spaces)?"""
    letters = [ch for ch in text if ch.isalpha()]
    unspaced = sum(_script_name(ch) in ("CJK", "Hiragana", "Katakana", "Thai") for ch in letters)
    return unspaced * 2 < max(1, len(letters))


@cache
def font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size, layout_engine=ImageFont.Layout.RAQM)
