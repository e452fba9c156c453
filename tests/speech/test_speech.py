"""Offline speech for real; gTTS against recorded HTTP answers (the only fake is the network)."""

from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import responses

from engine.errors import InvalidInput, SpeechFailed
from engine.speech import SpeechOrder, engines_for, speak
from engine.speech.espeak import EspeakEngine, languages
from engine.speech.gtts_engine import GttsEngine
from tests.helpers import GTTS_URL as URL
from tests.helpers import google_answer, wav_seconds


@contextmanager
def no_room():
    """The neural voice's turn for memory, refused (as on a machine too small for it)."""
    raise SpeechFailed("not enough memory for the neural voice (90 MB for it, it needs 201 MB)")
    yield 0.0


def chain(choice: str):
    return engines_for(choice, no_room, Path("unused: the voice is refused its memory first"))


def test_offline_speech_is_real_audio_with_word_timings(tmp_path):
    speech = EspeakEngine().synthesize(SpeechOrder("Stay hungry. Stay foolish.", "en", tmp_path))
    assert speech.engine == "espeak"
    assert 1.0 < speech.duration_s < 5.0
    assert speech.duration_s == pytest.approx(wav_seconds(speech.path), abs=0.01)
    assert [w.text for w in speech.words] == ["Stay", "hungry", "Stay", "foolish"]
    starts = [w.start_s for w in speech.words]
    assert starts == sorted(starts) and starts[0] < 0.2
    assert all(w.end_s > w.start_s for w in speech.words)


def test_offline_engine_refuses_an_unknown_language(tmp_path):
    with pytest.raises(InvalidInput, match="xx"):
        EspeakEngine().synthesize(SpeechOrder("hello", "xx", tmp_path))


def test_offline_languages_are_listed():
    assert {"en-us", "fr-fr", "de", "ar", "ja"} <= set(languages())


@responses.activate
def test_gtts_success_is_decoded_to_wav(tmp_path, speech_mp3):
    responses.post(URL, body=google_answer(speech_mp3))
    speech = speak(SpeechOrder("Stay hungry.", "en", tmp_path), chain("auto"))
    assert speech.engine == "gtts"
    assert speech.fallback_reason is None
    assert 1.0 < wav_seconds(speech.path) < 5.0
    assert not (tmp_path / "speech.mp3").exists()
    assert len(responses.calls) == 1


@responses.activate
def test_gtts_accent_goes_to_the_regional_domain(tmp_path, speech_mp3):
    responses.post(URL.replace(".com", ".co.uk"), body=google_answer(speech_mp3))
    assert GttsEngine(tld="co.uk").synthesize(SpeechOrder("Hello", "en", tmp_path)).engine == "gtts"


FAILURES = {
    "429": (dict(status=429, body="Too Many Requests"), "429"),
    "500": (dict(status=500, body="oops"), "HTTP 500"),
    "503": (dict(status=503, body=""), "HTTP 503"),
    "empty body": (dict(status=200, body=""), "empty"),
    "no audio in answer": (dict(status=200, body=')]}\'\n\n12\n[["wrb.fr","jQ1olc",null]]\n'), "HTTP 200"),
    "undecodable audio": (dict(status=200, body=google_answer(b"this is not an mp3 at all" * 40)), "decoded"),
    "connection error": (dict(body=requests.exceptions.ConnectionError("refused")), "Failed to connect"),
    "timeout": (dict(body=requests.exceptions.ReadTimeout("read timed out")), "timed out"),
}


@pytest.mark.parametrize("case", FAILURES)
@responses.activate
def test_gtts_failure_falls_back_to_offline_with_the_reason(case, tmp_path):
    answer, reason = FAILURES[case]
    responses.post(URL, **answer)
    speech = speak(SpeechOrder("Stay hungry.", "en", tmp_path), chain("auto"))
    assert speech.engine == "espeak"
    assert speech.fallback_reason.startswith("gtts: ")
    assert reason in speech.fallback_reason
    assert "; piper: not enough memory for the neural voice" in speech.fallback_reason
    assert wav_seconds(speech.path) > 0.5


@responses.activate
def test_gtts_alone_fails_with_a_clear_sentence(tmp_path):
    responses.post(URL, status=429)
    with pytest.raises(SpeechFailed, match=r"rate-limited.*auto speech engine"):
        speak(SpeechOrder("Stay hungry.", "en", tmp_path), chain("gtts"))


def test_gtts_is_given_a_timeout(tmp_path):
    seen = {}

    def capture(request):
        seen["timeout"] = request.req_kwargs.get("timeout")
        return (429, {}, "")

    with responses.RequestsMock() as mock:
        mock.add_callback(responses.POST, URL, callback=capture)
        with pytest.raises(SpeechFailed):
            GttsEngine(timeout_s=7).synthesize(SpeechOrder("Hello", "en", tmp_path))
    assert seen["timeout"] == 7


def test_language_neither_engine_offers_is_invalid_input(tmp_path):
    with pytest.raises(InvalidInput, match="zz"):
        speak(SpeechOrder("Hello", "zz", tmp_path), chain("auto"))
