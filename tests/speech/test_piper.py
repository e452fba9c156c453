"""The neural offline voice for real: Piper in its own process under the watchdog, spoken in short
pieces with timings from the synthesis, handing over to eSpeak NG with the reason when it may not
or cannot speak; and the speaking rate of every engine."""

import itertools
import os
import re
from contextlib import contextmanager

import pytest
import responses

from engine.errors import SpeechFailed
from engine.memory.reading import tree_rss_mb
from engine.models import Request
from engine.pipeline import generate
from engine.settings import Settings
from engine.speech import SpeechOrder, engines_for, speak
from engine.speech.piper import MAX_PIECE_CHARS, MAX_PIECE_WORDS, PiperEngine, pieces
from engine.visuals.text import QuoteText
from tests.helpers import GTTS_URL, QUOTES, wav_seconds


@contextmanager
def room(mb: float):
    yield mb


def order(text: str, folder, **changes) -> SpeechOrder:
    return SpeechOrder(text, "en", folder, QuoteText.of(text).phrase_spans(), **changes)


def test_piper_speaks_the_quote_with_a_timing_for_every_word(tmp_path):
    text = QUOTES["medium"]
    speech = PiperEngine(lambda: room(400)).synthesize(order(text, tmp_path, timed=True))
    assert speech.engine == "piper" and 6 < speech.duration_s < 14
    assert speech.duration_s == pytest.approx(wav_seconds(speech.path), abs=0.01)
    assert [w.text for w in speech.words] == text.split()
    assert [w.position for w in speech.words] == [m.start() for m in re.finditer(r"\S+", text)]
    assert all(a.end_s == pytest.approx(b.start_s, abs=0.002) for a, b in itertools.pairwise(speech.words))
    assert speech.words[-1].end_s == pytest.approx(speech.duration_s, abs=0.01)
    assert speech.peak_rss_mb > 50  # its own process, measured by the watchdog
    assert not list(tmp_path.glob("piper-*.json"))  # its spec and timings are gone


def test_pieces_are_short_keep_to_their_phrase_and_cover_every_word():
    text = QUOTES["long"] + " A-very-long-hyphenated-word-that-goes-on-and-on-past-forty-characters."
    phrases = QuoteText.of(text).phrase_spans()
    spans = pieces(text, phrases)
    assert all(len(text[a:b].split()) <= MAX_PIECE_WORDS and b - a <= MAX_PIECE_CHARS for a, b in spans)
    assert all(any(p <= a and b <= q for p, q in phrases) for a, b in spans)
    assert "".join(text[a:b] for a, b in spans).replace(" ", "") == text.replace(" ", "")


@responses.activate
def test_a_budget_too_small_stops_the_voice_and_espeak_speaks(tmp_path):
    responses.post(GTTS_URL, status=429)
    speech = speak(order("Stay hungry. Stay foolish.", tmp_path), engines_for("auto", lambda: room(60)))
    assert speech.engine == "espeak"
    assert "piper: the neural voice was stopped by the watchdog" in speech.fallback_reason
    assert speech.fallback_reason.startswith("gtts: ")
    assert not (tmp_path / "speech-piper.wav").exists()  # no half speech left


def test_the_neural_voice_asked_for_by_name_still_hands_over_to_espeak(tmp_path):
    speech = speak(order("Stay hungry.", tmp_path), engines_for("piper", lambda: room(60)))
    assert speech.engine == "espeak"
    assert speech.fallback_reason.startswith("piper: the neural voice was stopped by the watchdog")


@responses.activate
def test_a_language_the_voice_does_not_speak_goes_from_gtts_to_espeak(tmp_path):
    responses.post(GTTS_URL, status=503)
    french = SpeechOrder("La vie est belle.", "fr", tmp_path)
    speech = speak(french, engines_for("auto", lambda: room(400)))
    assert speech.engine == "espeak"
    assert "piper: the neural voice speaks English only, not 'fr'" in speech.fallback_reason
    assert speak(french, engines_for("piper", lambda: room(400))).engine == "espeak"


def test_a_voice_that_crashes_is_reported_in_one_line(tmp_path):
    """The child's own error, as its last line, not a traceback; no process or file left."""
    (tmp_path / "speech-piper.wav").mkdir()  # where the voice writes: it cannot
    with pytest.raises(SpeechFailed, match=r"^the neural voice failed: IsADirectoryError: .*speech-piper.wav"):
        PiperEngine(lambda: room(400)).synthesize(SpeechOrder("Hello there.", "en", tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["speech-piper.wav"]


@pytest.mark.parametrize("voice", ["espeak", "piper"])
def test_the_speaking_rate_changes_how_long_the_quote_lasts(tmp_path, voice):
    lasts = {}
    for speed in ("slower", "normal", "faster"):
        folder = tmp_path / speed
        folder.mkdir()
        lasts[speed] = speak(order(QUOTES["medium"], folder, speed=speed), engines_for(voice, lambda: room(400)))
        lasts[speed] = lasts[speed].duration_s
    assert lasts["slower"] > 1.1 * lasts["normal"] and lasts["faster"] < 0.92 * lasts["normal"], lasts


def test_without_room_for_the_voice_the_generation_is_spoken_by_espeak_and_says_why(tmp_path):
    """MAX_MEMORY_MB leaves about 130 MB beside this process: the renders fit, the voice (about
    160 MB with its margin) does not, so eSpeak NG speaks and the report says why."""
    limit = round(tree_rss_mb(os.getpid()) + 130)
    settings = Settings.from_env({"DATA_DIR": str(tmp_path / "data"), "MAX_MEMORY_MB": str(limit)})
    result = generate(Request(QUOTES["short"], tts="piper", tier="low"), settings)
    assert result.status == "ok" and result.tts_engine == "espeak" and result.tts_peak_mb is None
    assert result.tts_fallback_reason.startswith("piper: not enough memory for the neural voice")
