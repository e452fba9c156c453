"""Hostile and odd input, table-driven: each gets a clear sentence or a correct video, never a
traceback, a partial file or a half-written history row."""

import io

import pytest
from PIL import Image

from engine.errors import InvalidInput, QuoteError
from engine.history import HistoryStore
from engine.models import Request
from engine.pipeline import generate
from engine.render.ffmpeg import probe
from tests.helpers import run_cli


def picture(kind: str, size=(64, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (90, 30, 120)).save(buffer, format=kind)
    return buffer.getvalue()


def bomb() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, format="PNG")
    return buffer.getvalue()


OK = None  # a correct video is expected
CASES = {
    "empty": (Request(""), "the quote is empty"),
    "spaces": (Request("    "), "the quote is empty"),
    "blank lines": (Request("\n\n\n"), "the quote is empty"),
    "tabs": (Request("\t\t"), "the quote is empty"),
    "over the limit by one": (Request("a" * 2001), "2001 characters long, over the 2000"),
    "exactly at the limit": (Request(("word " * 400)[:2000]), OK),
    "NUL": (Request("Stay\x00hungry"), r"U\+0000"),
    "bell": (Request("Stay hungry\x07"), r"U\+0007"),
    "terminal escape": (Request("\x1b[31mred\x1b[0m"), r"U\+001B"),
    "DEL": (Request("Stay\x7f"), r"U\+007F"),
    "C1 control": (Request("Stay\x85hungry"), r"U\+0085"),
    "lone surrogate": (Request("Stay \ud800 hungry"), r"U\+D800"),
    "private use": (Request("Stay \ue000 hungry"), r"U\+E000"),
    "unassigned": (Request("Stay \U000e0fff hungry"), r"U\+E0FFF"),
    "right-to-left override": (Request("Stay \u202ehungry"), "text-direction control"),
    "emoji": (Request("Stay hungry 🍔"), "cannot draw"),
    "emoji only": (Request("🍔🍟"), "no letters or digits"),
    "punctuation only": (Request("?!…"), "no letters or digits"),
    "zero-width space only": (Request("\u200b\u200b"), "no letters or digits"),
    "zero-width joiner in a word": (Request("Stay\u200dhungry"), OK),
    "byte order mark": (Request("\ufeffStay hungry."), OK),
    "digits only": (Request("2024"), OK),
    "combining accent": (Request("Cafe\u0301 au lait"), OK),
    "Windows line ends": (Request("Stay hungry.\r\nStay foolish."), OK),
    "many blank lines": (Request("Stay hungry." + "\n" * 200 + "Stay foolish."), OK),
    "very long word": (Request("Supercalifragilistic" * 15), OK),
    "Greek and Cyrillic": (Request("Γνῶθι σεαυτόν. Познай самого себя."), OK),
    "right-to-left Hebrew": (Request("שלום עולם", lang="he"), OK),
    "Latin mixed with Arabic": (Request("Peace سلام"), OK),
    "Arabic mixed with Japanese": (Request("سلام 平和"), "mixing Arabic and CJK"),
    "HTML in the quote": (Request("<script>alert('x')</script> <b>bold</b>"), OK),
    "HTML in the author": (Request("Stay hungry.", author="<img src=x onerror=alert(1)>"), OK),
    "Markdown": (Request("**Stay** _hungry_ [link](javascript:alert(1)) # heading"), OK),
    "author too long": (Request("Stay hungry.", author="a" * 121), "keep it under 120"),
    "author on two lines": (Request("Stay hungry.", author="Steve\nJobs"), "one line"),
    "author with a control": (Request("Stay hungry.", author="Steve\x1bJobs"), r"author contains control"),
    "tier out of range": (Request("Hello", tier="ultra"), "tier 'ultra' is not offered"),
    "method out of range": (Request("Hello", method="turbo"), "method 'turbo' is not offered"),
    "aspect out of range": (Request("Hello", aspect="4:3"), "aspect '4:3' is not offered"),
    "speech engine out of range": (Request("Hello", tts="siri"), "speech engine 'siri' is not offered"),
    "language not a code": (Request("Hello", lang="english!"), "not a language code"),
    "language no engine offers": (Request("Hello", lang="zz"), "language 'zz' is not offered"),
    "accent with a path": (Request("Hello", tld="evil.com/../x"), "not a Google domain ending"),
    "background out of range": (Request("Hello", background="neon"), "background 'neon' is not offered"),
    "upload that is a document": (Request("Hello", background_image=b"%PDF-1.7 " * 50), "not a readable"),
    "upload that is a GIF": (Request("Hello", background_image=picture("GIF")), "GIF image"),
    "upload bomb": (Request("Hello", background_image=bomb()), r"20000×20000 pixels|too large to decode"),
    "upload truncated": (Request("Hello", background_image=picture("JPEG", (800, 800))[:300]), "not a readable"),
    "upload over 10 MB": (Request("Hello", background_image=b"\xff" * (10 * 2**20 + 1)), "under 10 MB"),
    "upload mislabelled but real": (Request("Hello", background_image=picture("WEBP")), OK),
}


@pytest.mark.parametrize("case", CASES)
def test_odd_input(case, settings):
    request, expected = CASES[case]
    request = Request(**{**request.__dict__, "tier": request.tier if request.tier != "auto" else "low"})
    store = HistoryStore.open(settings)
    try:
        if expected is OK:
            result = generate(request, settings, store=store)
            found = probe(result.output)
            assert found.video_codec == "h264" and found.duration_s > 0.3
        else:
            with pytest.raises(InvalidInput, match=expected) as caught:
                generate(request, settings, store=store)
            assert isinstance(caught.value, QuoteError) and caught.value.result.status == "error"
            assert not settings.outputs_dir.exists() or not list(settings.outputs_dir.iterdir())
        rows = store.generations()
        assert len(rows) == 1 and rows[0].status in ("ok", "error")  # one whole row, never a running one
    finally:
        store.close()


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40


@pytest.mark.parametrize(
    "env, message",
    [
        ({"MAX_RESOLUTION_HEIGHT": "tall"}, "MAX_RESOLUTION_HEIGHT='tall' is not a whole number"),
        ({"DEFAULT_BITRATE": "-5"}, "DEFAULT_BITRATE='-5' is not a bitrate"),
        ({"MAX_TEXT_CHARS": "999999999"}, "MAX_TEXT_CHARS=999999999 is out of range"),
    ],
)
def test_bad_environment_values_are_a_sentence(tmp_path, env, message):
    done = run_cli("generate", "Hello", env={"DATA_DIR": str(tmp_path), **env})
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
