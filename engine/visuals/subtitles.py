"""Subtitles: the quote's phrases with the times they are spoken, as SRT and WebVTT.

The cues are the phrase captions' states, so the subtitle track, the files beside the MP4 and the
highlighted phrase on the card agree. Both formats are a few lines of text; ffmpeg reads them back
in the tests (and muxes the SRT into the MP4 as a mov_text track).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.speech.base import Speech
from engine.visuals.captions import caption_states
from engine.visuals.text import QuoteText


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str


def cues(quote: QuoteText, speech: Speech, until_s: float | None = None) -> list[Cue]:
    """One cue per phrase; with `until_s` (a video cut shorter than its speech), none past it."""
    end = speech.duration_s if until_s is None else min(until_s, speech.duration_s)
    return [
        Cue(state.start_s, min(state.end_s, end), quote.line(state.first, state.last))
        for state in caption_states(quote, speech, "phrase")
        if min(state.end_s, end) > state.start_s
    ]


def srt(found: list[Cue]) -> str:
    blocks = [
        f"{n}\n{_stamp(c.start_s, ',')} --> {_stamp(c.end_s, ',')}\n{_plain(c.text).translate(_SRT_MARKUP)}\n"
        for n, c in enumerate(found, start=1)
    ]
    return "\n".join(blocks)


def vtt(found: list[Cue]) -> str:
    blocks = [f"{_stamp(c.start_s, '.')} --> {_stamp(c.end_s, '.')}\n{_escaped(_plain(c.text))}\n" for c in found]
    return "WEBVTT\n\n" + "\n".join(blocks)


# SRT has no escapes, and players read <b>, <font> and {\an8} in it as markup: a quote's brackets
# become look-alikes. WebVTT escapes them.
_SRT_MARKUP = str.maketrans({"<": "‹", ">": "›", "{": "(", "}": ")"})


def _escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _stamp(seconds: float, separator: str) -> str:
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def _plain(text: str) -> str:
    # A blank line ends a cue in both formats, and "-->" starts a timing line.
    return " ".join(text.split()).replace("-->", "->")
