"""Checks on a request before any work is done; each refusal is a sentence the visitor can act on."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace

from engine.audio.music import check_upload
from engine.choices import (
    ASPECTS,
    CAPTION_STYLES,
    METHOD_CHOICES,
    MUSIC_CHOICES,
    PRESETS,
    SPEEDS,
    TIER_CHOICES,
    TTS_CHOICES,
)  # fmt: skip
from engine.errors import InvalidInput
from engine.models import Request
from engine.settings import Settings
from engine.visuals.background import background
from engine.visuals.card import check_coverage

MAX_AUTHOR_CHARS = 120
_LANG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")
_TLD = re.compile(r"[a-z]{2,3}(?:\.[a-z]{2,3})?")


def validate(request: Request, settings: Settings) -> Request:
    """The request with text normalised (NFC, trimmed), or InvalidInput saying what to fix."""
    text = _clean(request.text, "quote")
    author = _clean(request.author, "author")
    if not text:
        raise InvalidInput("the quote is empty; type a quote to speak")
    if len(text) > settings.max_text_chars:
        raise InvalidInput(
            f"the quote is {len(text)} characters long, over the {settings.max_text_chars}-character limit; shorten it"
        )
    if len(author) > MAX_AUTHOR_CHARS:
        raise InvalidInput(f"the author is {len(author)} characters long; keep it under {MAX_AUTHOR_CHARS}")
    if "\n" in author:
        raise InvalidInput("the author must fit on one line; remove the line breaks")
    if not any(ch.isalnum() for ch in text):
        raise InvalidInput("the quote has no letters or digits to speak; type a quote")
    check_coverage(text + author)
    _one_of("tier", request.tier, TIER_CHOICES)
    _one_of("method", request.method, METHOD_CHOICES)
    _one_of("aspect", request.aspect, tuple(ASPECTS))
    aspect = request.aspect
    if request.preset is not None:
        _one_of("preset", request.preset, tuple(PRESETS))
        aspect = PRESETS[request.preset][0]
    _one_of("caption style", request.caption_style, CAPTION_STYLES)
    music = request.music
    if request.music_upload is not None:
        check_upload(request.music_upload, settings.temp_dir)  # a short MP3, WAV, OGG or M4A, else a sentence
        music = "upload"
    else:
        _one_of("music", music, MUSIC_CHOICES)
    tts = request.tts or settings.tts_engine
    _one_of("speech engine", tts, TTS_CHOICES)
    _one_of("speed", request.speed, SPEEDS)
    background(request.background, request.background_image)  # InvalidInput for a bad name or upload
    if request.out is not None and request.out.suffix.lower() != ".mp4":
        # The cover and subtitles are written beside it under the same name: .jpg, .srt, .vtt.
        raise InvalidInput(f"the output {request.out.name!r} must end in .mp4; name the video file")
    if not _LANG.fullmatch(request.lang):
        raise InvalidInput(f"language {request.lang!r} is not a language code; use one like en, fr or pt-BR")
    if not _TLD.fullmatch(request.tld):
        raise InvalidInput(f"accent {request.tld!r} is not a Google domain ending; use one like com, co.uk or com.au")
    return replace(request, text=text, author=author, tts=tts, aspect=aspect, music=music)


# Bidirectional embeddings, overrides and isolates: they can make a card read differently
# from the text that is spoken (a spoofing trick), and the layout sets direction itself.
_BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _clean(value: str, what: str) -> str:
    value = unicodedata.normalize("NFC", value).replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    value = value.strip()
    bad = [ch for ch in value if unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") and ch not in "\n\t"]
    if bad:
        codes = ", ".join(f"U+{ord(ch):04X}" for ch in sorted(set(bad))[:3])
        raise InvalidInput(f"the {what} contains control or unassigned characters ({codes}); remove them")
    if _BIDI_CONTROLS & set(value):
        raise InvalidInput(f"the {what} contains text-direction control characters; remove them")
    value = re.sub(r"\n{3,}", "\n\n", value)  # at most one blank line between paragraphs
    return re.sub(r"[ \t]+", " ", value)


def _one_of(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidInput(f"{what} {value!r} is not offered; choose one of: {', '.join(choices)}")
