"""The quote as text, read once: its tokens (words, or characters in scripts written without
spaces), its phrases (what a caption shows at a time), and the script that draws it. Speech,
captions and cards all take their words and phrases from here."""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.visuals.typeset import Script, script_for, spaced

MAX_WORDS = 6  # a phrase a viewer reads at a glance
MAX_CHARS_UNSPACED = 12
MAX_WORD_CHARS = 24
BREAK_AFTER = set(".,;:!?…—–。、，！？；：")


@dataclass(frozen=True)
class Token:
    text: str
    start: int  # character offsets in the quote
    end: int


@dataclass(frozen=True)
class QuoteText:
    text: str
    author: str
    tokens: tuple[Token, ...]
    phrases: tuple[tuple[int, int], ...]  # token ranges [first, last)
    spaced: bool  # written with spaces between words: lines break only at spaces
    script: Script  # the font that draws it all, and its direction

    @classmethod
    def of(cls, text: str, author: str = "") -> QuoteText:
        """Read a quote; InvalidInput when no bundled font draws it (and its author)."""
        is_spaced = spaced(text)
        tokens = tuple(tokenize(text, is_spaced))
        return cls(text, author, tokens, tuple(_phrases(tokens, is_spaced)), is_spaced, script_for(text + author))

    def phrase_spans(self) -> tuple[tuple[int, int], ...]:
        """Character spans of the phrases, for engines that speak phrase by phrase."""
        return tuple((self.tokens[first].start, self.tokens[last - 1].end) for first, last in self.phrases)

    def line(self, first: int, last: int) -> str:
        """The text of tokens [first, last), its white space folded to single spaces."""
        return " ".join(self.text[self.tokens[first].start : self.tokens[last - 1].end].split())


def tokenize(text: str, is_spaced: bool | None = None) -> list[Token]:
    """Words for spaced scripts; single characters (punctuation kept with the one before) otherwise."""
    if spaced(text) if is_spaced is None else is_spaced:
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
        if tokens and (ch in BREAK_AFTER or not ch.isalnum()) and tokens[-1].end == index:
            last = tokens[-1]
            tokens[-1] = Token(last.text + ch, last.start, index + 1)
        else:
            tokens.append(Token(ch, index, index + 1))
    return tokens


def _phrases(tokens: tuple[Token, ...], is_spaced: bool) -> list[tuple[int, int]]:
    """Token ranges of the phrases: cut after punctuation, or when a phrase is full."""
    limit = MAX_WORDS if is_spaced else MAX_CHARS_UNSPACED
    groups, first = [], 0
    for index, token in enumerate(tokens):
        full = index + 1 - first >= limit
        # A full phrase waits up to two more words for its punctuation: no one-word orphan phrases.
        soon = any(t.text[-1] in BREAK_AFTER for t in tokens[index + 1 : index + 3]) and index + 1 - first < limit + 2
        if token.text[-1] in BREAK_AFTER or (full and not soon):
            groups.append((first, index + 1))
            first = index + 1
    if first < len(tokens):
        groups.append((first, len(tokens)))
    return groups
