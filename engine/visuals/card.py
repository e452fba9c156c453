"""The quote card: text wrapped and sized to fit, drawn with Pillow on a background.

With captions, one card is drawn per caption state, identical but for the colours: the phrase
being spoken highlighted and the rest dimmed; in the word style the phrase bright and the word
being spoken highlighted. Layout is computed once, so only colours change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import ImageDraw

from engine.visuals.background import Background, render_background
from engine.visuals.text import QuoteText
from engine.visuals.typeset import AUTHOR_FONT, CJK_FONT, Script, font, script_for

TEXT_COLOUR = (250, 250, 245)
DIM_COLOUR = (160, 158, 184)
HIGHLIGHT_COLOUR = (255, 214, 102)
AUTHOR_COLOUR = (214, 204, 236)
LINE_HEIGHT = 1.3
AUTHOR_SCALE = 0.6


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
    width, height = size
    base = render_background(background, size)
    short = min(size)
    margin_x, margin_y = int(width * 0.08), max(int(height * 0.08), int(short * 0.1))
    box_w, box_h = width - 2 * margin_x, height - 2 * margin_y
    layout = fit(quote, box_w, box_h)
    paths = []
    for index, highlight in enumerate(highlights):
        image = base.copy()
        _draw_text(ImageDraw.Draw(image), quote, layout, size, margin_y, box_h, highlight)
        path = folder / (names[index] if names else f"card-{width}x{height}-{index:03d}.png")
        image.save(path, format="PNG", compress_level=1)  # fast: the file lives only for this job
        paths.append(path)
    return paths


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


def _draw_text(draw, quote: QuoteText, layout: Layout, size, margin_y, box_h, highlight) -> None:
    script, author = quote.script, quote.author
    width, _ = size
    face = font(script.font, layout.font_px)
    line_h = int(layout.font_px * LINE_HEIGHT)
    author_h = int(layout.author_px * 2.2) if author else 0
    y = margin_y + (box_h - line_h * len(layout.lines) - author_h) // 2
    direction = "rtl" if script.rtl else "ltr"
    for first, last in layout.lines:
        if last > first:
            _draw_line(draw, quote, first, last, face, width // 2, y, direction, highlight)
        y += line_h
    if author:
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


def _draw_line(draw, quote: QuoteText, first, last, face, centre_x, y, direction, highlight) -> None:
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
        draw.text((x, y), run, font=face, fill=colour, anchor="la", direction=direction)
