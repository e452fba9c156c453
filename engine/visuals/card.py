"""The quote card: text wrapped and sized to fit, drawn with Pillow on a background.

With captions, one card is drawn per caption state, identical but for the colours: the phrase
being spoken highlighted and the rest dimmed; in the word style the phrase bright and the word
being spoken highlighted. Layout is computed once, so only colours change.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from engine.visuals.background import Background, render_background
from engine.visuals.text import QuoteText
from engine.visuals.typeset import AUTHOR_FONT, CJK_FONT, Script, font, script_for
from engine.visuals.yuv import Frame

TEXT_COLOUR = (250, 250, 245)
DIM_COLOUR = (160, 158, 184)
HIGHLIGHT_COLOUR = (255, 214, 102)
AUTHOR_COLOUR = (214, 204, 236)
LINE_HEIGHT = 1.3
AUTHOR_SCALE = 0.6
KEPT_RUNS = 12  # text runs kept as masks, for a phrase's states and the lines around it (0.3 MB at 1080x1920)


# A phrase's token range [first, last), and in the word style the token being spoken.
Highlight = tuple[int, int] | tuple[int, int, int]


@dataclass(frozen=True)
class Layout:
    lines: tuple[tuple[int, int], ...]  # token ranges [first, last) per line
    font_px: int
    author_px: int


def check_coverage(text: str) -> Script:
    """The script (font, direction) for `text`; InvalidInput when no bundled font draws it."""
    return script_for(text)


def draw_card(text: str, author: str, size: tuple[int, int], out: Path, background: Background | None = None) -> Path:
    """One card with the whole quote in full colour."""
    return draw_cards(QuoteText.of(text, author), size, [None], out.parent, background, names=[out.name])[0]


def draw_cards(
    quote: QuoteText,
    size: tuple[int, int],
    highlights: Sequence[Highlight | None],
    folder: Path,
    background: Background | None = None,
    names: Sequence[str] | None = None,
) -> list[Path]:
    """One RGB PNG per highlight (a phrase's token range, with the word's token in the word style,
    or None for no highlight), same layout in each."""
    painter = Painter(quote, size, background)
    paths = []
    for index, highlight in enumerate(highlights):
        path = folder / (names[index] if names else f"card-{size[0]}x{size[1]}-{index:03d}.png")
        painter.picture(highlight).save(path, format="PNG", compress_level=1)  # fast: lives only for this job
        paths.append(path)
    return paths


class Painter:
    """The cards of one quote at one size, laid out once. A caption state differs from the card
    with every word dim only in the lines its phrase is on: that band is drawn again, not the
    whole card, and its text from masks kept from state to state (measured at 1080x1920, the 101
    word states of 529 characters: 3.3 to 3.7 ms a state, converted to YUV, 5.7 without the masks;
    a whole card drawn and written as a PNG, as before, took about 90)."""

    def __init__(self, quote: QuoteText, size: tuple[int, int], background: Background | None = None) -> None:
        self.quote, self.size = quote, size
        self.base = render_background(background, size)
        width, height = size
        margin_x, self.margin_y = int(width * 0.08), max(int(height * 0.08), int(min(size) * 0.1))
        self.box_h = height - 2 * self.margin_y
        self.layout = fit(quote, width - 2 * margin_x, self.box_h)
        self.line_h = int(self.layout.font_px * LINE_HEIGHT)
        self._whole: dict[str, Image.Image] = {}
        self._masks = RunMasks()
        self._dim: Frame | None = None
        self._frame: Frame | None = None
        self._changed = (0, 0)  # the rows of _frame that differ from _dim

    def picture(self, highlight: Highlight | None) -> Image.Image:
        """The card for one state; the caller may not change it (it may be shared)."""
        if highlight is None:
            return self._drawn("plain", None)
        band = self._band(highlight)
        if band is None:
            return self._drawn("dim", (0, 0))
        image = self._drawn("dim", (0, 0)).copy()
        image.paste(band[1], (0, band[0]))
        return image

    def frame(self, highlight: Highlight | None) -> memoryview:
        """The state's card as one raw yuv420p frame, for a pipe into ffmpeg: one buffer, changed
        in place from one state to the next (a fresh 6 MB image a state cost more than drawing it).
        Valid until the next call."""
        if highlight is None:
            return Frame(self._drawn("plain", None)).data.data
        if self._dim is None or self._frame is None:
            self._dim = Frame(self._drawn("dim", (0, 0)))
            self._frame = self._dim.copy()
            self.forget("dim")  # the frame holds it now (6 MB at 1080p as an image); a picture draws it again
        self._frame.copy_rows(self._dim, *self._changed)  # the last state's band back to dim
        band = self._band(highlight)
        self._changed = (0, 0)
        if band is not None:
            top, image = band
            self._frame.put(top, image)
            self._changed = (top, top + image.height)
        return self._frame.data.data

    def forget(self, name: str) -> None:
        """Let a whole card drawn for a picture go ("plain" or "dim"): drawn again if asked for."""
        self._whole.pop(name, None)

    def _band(self, highlight: Highlight) -> tuple[int, Image.Image] | None:
        """Where the state differs from the card with every word dim: the band of its phrase's lines
        (half a line over each edge for glyphs that reach out of their line: stacked marks), drawn again with
        every line that could reach into it; None when the phrase has no line."""
        lines = [i for i, (a, b) in enumerate(self.layout.lines) if a < highlight[1] and b > highlight[0]]
        if not lines:
            return None
        pad = self.line_h // 2
        top = max(0, self._line_y(lines[0]) - pad) & ~1  # even rows: 4:2:0 chroma spans two
        bottom = min(self.size[1], self._line_y(lines[-1]) + self.line_h + pad + 1) & ~1
        band = self.base.crop((0, top, self.size[0], bottom))
        _draw_text(ImageDraw.Draw(band), self.quote, self.layout, self.size, self.margin_y - top, self.box_h,
                   highlight, near=(-self.line_h, bottom - top + self.line_h), masks=self._masks)  # fmt: skip
        return top, band

    def _drawn(self, name: str, highlight: Highlight | None) -> Image.Image:
        """The whole card drawn once: plain (full colour), or every word dim (a highlight of no token)."""
        if name not in self._whole:
            image = self.base.copy()
            draw = ImageDraw.Draw(image)
            _draw_text(
                draw, self.quote, self.layout, self.size, self.margin_y, self.box_h, highlight, masks=self._masks
            )
            self._whole[name] = image
        return self._whole[name]

    def _line_y(self, index: int) -> int:
        return _first_line_y(self.quote, self.layout, self.margin_y, self.box_h) + index * self.line_h


def fit(quote: QuoteText, box_w: int, box_h: int) -> Layout:
    """The largest font size whose wrapped lines (and author line) fit the box."""
    script, author = quote.script, quote.author
    low, high = 10, max(11, box_h // 5)
    best = Layout(tuple(_wrap(quote, font(script.font, low), box_w)), low, 10)
    while low <= high:
        size = (low + high) // 2
        author_px = max(10, int(size * AUTHOR_SCALE))
        lines = _wrap(quote, font(script.font, size), box_w)
        needed = int(size * LINE_HEIGHT) * len(lines) + (int(author_px * 2.2) if author else 0)
        face = font(script.font, size)
        lines_fit = all(face.getlength(quote.line(a, b)) <= box_w for a, b in lines if b > a)
        author_fits = not author or font(_author_font(script), author_px).getlength(_byline(author, script)) <= box_w
        if needed <= box_h and lines_fit and author_fits:
            best, low = Layout(tuple(lines), size, author_px), size + 1
        else:
            high = size - 1
    return best


def _wrap(quote: QuoteText, face, width: int) -> list[tuple[int, int]]:
    """Greedy wrap into token ranges; a line break in the quote starts a new line."""
    text, tokens = quote.text, quote.tokens
    lines: list[tuple[int, int]] = []
    first = 0
    for index in range(1, len(tokens) + 1):
        if index == len(tokens):
            break
        forced = "\n" in text[tokens[index - 1].end : tokens[index].start]
        if forced or face.getlength(quote.line(first, index + 1)) > width:
            lines.append((first, index))
            first = index
    if tokens:
        lines.append((first, len(tokens)))
    return lines or [(0, 0)]


def _byline(author: str, script: Script) -> str:
    # Droid Sans Fallback maps the em dash to an empty box; CJK bylines go without one.
    if _author_font(script) == CJK_FONT:
        return author
    return f"— {author}"


def _author_font(script: Script) -> Path:
    return AUTHOR_FONT if script.font.name.startswith("DejaVu") else script.font


def _first_line_y(quote: QuoteText, layout: Layout, margin_y: int, box_h: int) -> int:
    """Where the first line's ascender sits: the text block centred in the box."""
    line_h = int(layout.font_px * LINE_HEIGHT)
    author_h = int(layout.author_px * 2.2) if quote.author else 0
    return margin_y + (box_h - line_h * len(layout.lines) - author_h) // 2


def _draw_text(draw, quote: QuoteText, layout: Layout, size, margin_y, box_h, highlight, near=None, masks=None) -> None:
    """The quote and its byline; with `near` (top, bottom), only the lines whose top lies in it;
    with `masks`, text drawn from the masks it keeps."""
    script, author = quote.script, quote.author
    width, _ = size
    face = font(script.font, layout.font_px)
    line_h = int(layout.font_px * LINE_HEIGHT)
    y = _first_line_y(quote, layout, margin_y, box_h)
    direction = "rtl" if script.rtl else "ltr"
    for first, last in layout.lines:
        if last > first and (near is None or near[0] <= y <= near[1]):
            _draw_line(draw, quote, first, last, face, width // 2, y, direction, highlight, masks)
        y += line_h
    if author and (near is None or near[0] <= y <= near[1]):
        author_face = font(_author_font(script), layout.author_px)
        draw.text((width // 2, y + layout.author_px), _byline(author, script), font=author_face, fill=AUTHOR_COLOUR,
                  anchor="ma", direction=direction)  # fmt: skip


def _runs(first: int, last: int, highlight: Highlight) -> list[tuple[int, int, tuple[int, int, int]]]:
    """The line's tokens [first, last) in coloured runs: dim outside the phrase; inside it the
    highlight colour (phrase style), or bright with the spoken word highlighted (word style)."""

    def clip(token: int) -> int:
        return min(max(first, token), last)

    p0, p1 = clip(highlight[0]), clip(highlight[1])
    if len(highlight) == 2:
        inside = [(p0, p1, HIGHLIGHT_COLOUR)]
    else:
        w0, w1 = clip(highlight[2]), clip(highlight[2] + 1)  # the word lies in its phrase
        inside = [(p0, w0, TEXT_COLOUR), (w0, w1, HIGHLIGHT_COLOUR), (w1, p1, TEXT_COLOUR)]
    runs = [(first, p0, DIM_COLOUR), *inside, (p1, last, DIM_COLOUR)]
    return [(a, b, colour) for a, b, colour in runs if b > a]


def _draw_line(draw, quote: QuoteText, first, last, face, centre_x, y, direction, highlight, masks=None) -> None:
    """The line as up to three runs (before, inside, after the highlight), placed by their
    measured offsets so every state has the same layout and only the colours change."""
    text, tokens = quote.text, quote.tokens
    whole = quote.line(first, last)
    total = face.getlength(whole, direction=direction)
    left = centre_x - total / 2
    runs = [(first, last, TEXT_COLOUR)] if highlight is None else _runs(first, last, highlight)
    start_char = tokens[first].start
    for a, b, colour in runs:
        before = " ".join(text[start_char : tokens[a].start].split())
        run = quote.line(a, b)
        offset = face.getlength(before + (" " if before and " " in whole else ""), direction=direction)
        run_w = face.getlength(run, direction=direction)
        x = left + offset if direction == "ltr" else left + total - offset - run_w
        if masks is None:
            draw.text((x, y), run, font=face, fill=colour, anchor="la", direction=direction)
        else:
            masks.draw(draw, (x, y), run, face, colour, direction)


class RunMasks:
    """Runs of text kept as masks, drawn again in any colour. A caption state redraws the lines
    around its phrase; about two thirds of its runs were drawn the same by the states before it,
    and rendering them (FreeType) was 60% of drawing a state (measured: 740 runs, 282 distinct, for
    the 101 word states of 529 characters)."""

    def __init__(self, kept: int = KEPT_RUNS) -> None:
        self.kept = kept
        self._masks: OrderedDict[tuple, tuple[Image.Image, int, int]] = OrderedDict()

    def draw(self, draw: ImageDraw.ImageDraw, xy: tuple[float, float], run: str, face, fill, direction: str) -> None:
        """What `draw.text(xy, run, font=face, fill=fill, anchor="la", direction=direction)` draws:
        the same mask (rendered at the same fraction of a pixel), blended in by the same call."""
        x, y = xy
        if x < 0 or y != int(y):  # a mask rendered at a negative fraction would differ: not kept
            draw.text(xy, run, font=face, fill=fill, anchor="la", direction=direction)
            return
        fraction = x - int(x)
        key = (run, fraction, face, direction)
        kept = self._masks.get(key)
        if kept is None:
            left, top, right, bottom = face.getbbox(run, anchor="la", direction=direction)
            pad = 2  # the fraction, and a glyph's bearing past its box
            at_x, at_y = pad - math.floor(left), pad - math.floor(top)
            mask = Image.new(
                "L", (math.ceil(right) - math.floor(left) + 2 * pad, math.ceil(bottom) - math.floor(top) + 2 * pad)
            )
            ImageDraw.Draw(mask).text(
                (at_x + fraction, at_y), run, font=face, fill=255, anchor="la", direction=direction
            )
            kept = self._masks[key] = (mask, at_x, at_y)
            if len(self._masks) > self.kept:
                self._masks.popitem(last=False)
        else:
            self._masks.move_to_end(key)
        mask, at_x, at_y = kept
        draw.bitmap((int(x) - at_x, int(y) - at_y), mask, fill=fill)
