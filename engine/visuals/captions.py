"""Captions: the quote cut into phrases, each timed from the speech, one card per phrase.

Words are tied to the speech by character position: eSpeak NG reports where each word
starts in the text and when it is heard; gTTS, spoken phrase by phrase, gives each
phrase's start. Words without a timing of their own are placed between their neighbours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise

from engine.speech.base import Speech
from engine.visuals.typeset import spaced

MAX_WORDS = 6  # a phrase a viewer reads at a glance
MAX_CHARS_UNSPACED = 12
MAX_WORD_CHARS = 24
_BREAK_AFTER = set(".,;:!?…—–。、，！？；：")


@dataclass(frozen=True)
class Token:
    text: str
    start: int  # character offsets in the quote
    end: int


@dataclass(frozen=True)
class CaptionState:
    first: int  # token indices [first, last)
    last: int
    start_s: float
    end_s: float


def tokenize(text: str) -> list[Token]:
    """Words for spaced scripts; single characters (punctuation kept with the one before) otherwise."""
    if spaced(text):
        # A word longer than MAX_WORD_CHARS (a URL, a joke) is cut so a line can still hold it.
        return [
            Token(m[0][i : i + MAX_WORD_CHARS], m.start() + i, min(m.end(), m.start() + i + MAX_WORD_CHARS))
            for m in re.finditer(r"\S+", text)
            for i in range(0, len(m[0]), MAX_WORD_CHARS)
        ]
    tokens: list[Token] = []
    for index, ch in enumerate(text):
        if ch.isspace():
            continue
        if tokens and (ch in _BREAK_AFTER or not ch.isalnum()) and tokens[-1].end == index:
            last = tokens[-1]
            tokens[-1] = Token(last.text + ch, last.start, index + 1)
        else:
            tokens.append(Token(ch, index, index + 1))
    return tokens


def phrases(text: str) -> list[tuple[int, int]]:
    """Token ranges [first, last) of the phrases: cut after punctuation, or when a phrase is full."""
    tokens = tokenize(text)
    limit = MAX_WORDS if spaced(text) else MAX_CHARS_UNSPACED
    groups, first = [], 0
    for index, token in enumerate(tokens):
        full = index + 1 - first >= limit
        # A full phrase waits up to two more words for its punctuation: no one-word orphan phrases.
        soon = any(t.text[-1] in _BREAK_AFTER for t in tokens[index + 1 : index + 3]) and index + 1 - first < limit + 2
        if token.text[-1] in _BREAK_AFTER or (full and not soon):
            groups.append((first, index + 1))
            first = index + 1
    if first < len(tokens):
        groups.append((first, len(tokens)))
    return groups


def phrase_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the phrases, for engines that speak phrase by phrase."""
    tokens = tokenize(text)
    return [(tokens[first].start, tokens[last - 1].end) for first, last in phrases(text)]


def caption_states(text: str, speech: Speech) -> list[CaptionState]:
    """One state per phrase, from its first word's start to the next phrase's start."""
    tokens = tokenize(text)
    groups = phrases(text)
    starts = _token_starts(tokens, speech, len(text))
    states = []
    for index, (first, last) in enumerate(groups):
        begin = 0.0 if index == 0 else starts[first]
        end = speech.duration_s if index + 1 == len(groups) else starts[groups[index + 1][0]]
        states.append(CaptionState(first, last, round(begin, 3), round(max(begin, end), 3)))
    return states


def _token_starts(tokens: list[Token], speech: Speech, length: int) -> list[float]:
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
