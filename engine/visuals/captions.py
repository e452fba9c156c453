"""Captions: each phrase of the quote (engine.visuals.text) timed from the speech, one card per
phrase; in the word style, one card per word, the word being spoken highlighted within its phrase.

Words are tied to the speech by character position: eSpeak NG reports where each word
starts in the text and when it is heard, Piper each word's share of the piece it spoke; gTTS,
spoken phrase by phrase, gives each phrase's start. Words without a timing of their own are
placed between their neighbours by character offset (so gTTS's words are spread by length).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from engine.speech.base import Speech
from engine.visuals.text import QuoteText, Token


@dataclass(frozen=True)
class CaptionState:
    first: int  # the phrase's token indices [first, last)
    last: int
    start_s: float
    end_s: float
    word: int | None = None  # in the word style, the token being spoken

    @property
    def highlight(self) -> tuple[int, int] | tuple[int, int, int]:
        return (self.first, self.last) if self.word is None else (self.first, self.last, self.word)


def caption_states(quote: QuoteText, speech: Speech, style: str = "phrase") -> list[CaptionState]:
    """One state per phrase, from its first word's start to the next phrase's start; in the word
    style one per word, from its start to the next word's. Scripts written without spaces keep the
    phrase style: their tokens are characters, and a state per character would be thousands."""
    if not quote.spaced:
        style = "phrase"
    groups = quote.phrases
    starts = _token_starts(quote.tokens, speech, len(quote.text))
    states = []
    for index, (first, last) in enumerate(groups):
        begin = 0.0 if index == 0 else starts[first]
        end = speech.duration_s if index + 1 == len(groups) else starts[groups[index + 1][0]]
        if style != "word":
            states.append(CaptionState(first, last, round(begin, 3), round(max(begin, end), 3)))
            continue
        bounds = [begin, *(max(begin, starts[word]) for word in range(first + 1, last)), max(begin, end)]
        for word, (a, b) in zip(range(first, last), pairwise(bounds), strict=True):
            states.append(CaptionState(first, last, round(a, 3), round(max(a, b), 3), word))
    return states


def _token_starts(tokens: tuple[Token, ...], speech: Speech, length: int) -> list[float]:
    """Each token's start time: its earliest timing, else interpolated by character offset."""
    known: dict[int, float] = {}
    token_at = {pos: i for i, t in enumerate(tokens) for pos in range(t.start, t.end)}
    for word in speech.words:
        index = token_at.get(word.position)
        if index is not None and (index not in known or word.start_s < known[index]):
            known[index] = word.start_s
    anchors = sorted([(0, 0.0), *((tokens[i].start, t) for i, t in known.items()), (length, speech.duration_s)])
    # Keep anchors monotonic in time: a stray event must not make a later word start earlier.
    clean = [anchors[0]]
    for offset, t in anchors[1:]:
        clean.append((offset, max(t, clean[-1][1])))
    return [known.get(i, _interpolate(clean, tok.start)) for i, tok in enumerate(tokens)]


def _interpolate(anchors: list[tuple[int, float]], offset: int) -> float:
    for (a_off, a_t), (b_off, b_t) in pairwise(anchors):
        if a_off <= offset <= b_off:
            return a_t if b_off == a_off else a_t + (b_t - a_t) * (offset - a_off) / (b_off - a_off)
    return anchors[-1][1]
