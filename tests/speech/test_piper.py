"""The neural offline voice for real: Piper in its own process under the watchdog, spoken in short
pieces with timings from the synthesis, handing over to eSpeak NG with the reason when it may not
or cannot speak; and the speaking rate of every engine."""

import itertools
import os
import re
import socket
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import responses

from engine.errors import SpeechFailed
from engine.history.store import host_name
from engine.memory.plan import margin_mb
from engine.memory.reading import tree_rss_mb
from engine.memory.voice import FIRST_USE_MB
from engine.models import Request
from engine.pipeline import generate
from engine.settings import Settings
from engine.speech import SpeechOrder, engines_for, speak
from engine.speech.piper import MAX_PIECE_CHARS, MAX_PIECE_WORDS, PiperEngine, pieces, saved_voice
from engine.visuals.text import QuoteText
from tests.helpers import GTTS_URL, QUOTES, ROOT, wav_seconds, writes_of


@contextmanager
def room(mb: float):
    yield mb


def order(text: str, folder, **changes) -> SpeechOrder:
    return SpeechOrder(text, "en", folder, QuoteText.of(text).phrase_spans(), **changes)


def test_piper_speaks_the_quote_with_a_timing_for_every_word(tmp_path, voices):
    text = QUOTES["medium"]
    speech = PiperEngine(lambda: room(400), voices).synthesize(order(text, tmp_path, timed=True))
    assert speech.engine == "piper" and 6 < speech.duration_s < 14
    assert speech.duration_s == pytest.approx(wav_seconds(speech.path), abs=0.01)
    assert [w.text for w in speech.words] == text.split()
    assert [w.position for w in speech.words] == [m.start() for m in re.finditer(r"\S+", text)]
    assert all(a.end_s == pytest.approx(b.start_s, abs=0.002) for a, b in itertools.pairwise(speech.words))
    assert speech.words[-1].end_s == pytest.approx(speech.duration_s, abs=0.01)
    assert speech.peak_rss_mb > 50  # its own process, measured by the watchdog
    assert not list(tmp_path.glob("piper-*.json"))  # its spec and timings are gone


@pytest.mark.parametrize("name", ["medium", "long"])
def test_the_voice_is_mastered_in_two_writes(tmp_path, voices, monkeypatch, name):
    """Piper's peaks are high for its loudness: the limiter takes back more than a first small gain
    adds, and the second write must not aim from that as if it were a line (it overshot: three)."""
    from engine.audio.master import master

    speech = PiperEngine(lambda: room(400), voices).synthesize(order(QUOTES[name], tmp_path))
    writes = writes_of(monkeypatch, tmp_path / "mastered.wav")
    done = master(speech, tmp_path / "mastered.wav")
    assert 1 <= len(writes) <= 2 and done.loudness.meets_target(), done.loudness


def test_pieces_are_short_keep_to_their_phrase_and_cover_every_word():
    text = QUOTES["long"] + " A-very-long-hyphenated-word-that-goes-on-and-on-past-forty-characters."
    phrases = QuoteText.of(text).phrase_spans()
    spans = pieces(text, phrases)
    assert all(len(text[a:b].split()) <= MAX_PIECE_WORDS and b - a <= MAX_PIECE_CHARS for a, b in spans)
    assert all(any(p <= a and b <= q for p, q in phrases) for a, b in spans)
    assert "".join(text[a:b] for a, b in spans).replace(" ", "") == text.replace(" ", "")


@responses.activate
def test_a_budget_too_small_stops_the_voice_and_espeak_speaks(tmp_path, voices):
    responses.post(GTTS_URL, status=429)
    speech = speak(order("Stay hungry. Stay foolish.", tmp_path), engines_for("auto", lambda: room(30), voices))
    assert speech.engine == "espeak"
    assert "piper: the neural voice was stopped by the watchdog" in speech.fallback_reason
    assert speech.fallback_reason.startswith("gtts: ")
    assert not (tmp_path / "speech-piper.wav").exists()  # no half speech left


def test_the_neural_voice_asked_for_by_name_still_hands_over_to_espeak(tmp_path, voices):
    speech = speak(order("Stay hungry.", tmp_path), engines_for("piper", lambda: room(30), voices))
    assert speech.engine == "espeak"
    assert speech.fallback_reason.startswith("piper: the neural voice was stopped by the watchdog")


@responses.activate
def test_a_language_the_voice_does_not_speak_goes_from_gtts_to_espeak(tmp_path, voices):
    responses.post(GTTS_URL, status=503)
    french = SpeechOrder("La vie est belle.", "fr", tmp_path)
    speech = speak(french, engines_for("auto", lambda: room(400), voices))
    assert speech.engine == "espeak"
    assert "piper: the neural voice speaks English only, not 'fr'" in speech.fallback_reason
    assert speak(french, engines_for("piper", lambda: room(400), voices)).engine == "espeak"


def test_a_voice_that_crashes_is_reported_in_one_line(tmp_path, voices):
    """The child's own error, as its last line, not a traceback; no process or file left."""
    (tmp_path / "speech-piper.wav").mkdir()  # where the voice writes: it cannot
    with pytest.raises(SpeechFailed, match=r"^the neural voice failed: IsADirectoryError: .*speech-piper.wav"):
        PiperEngine(lambda: room(400), voices).synthesize(SpeechOrder("Hello there.", "en", tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["speech-piper.wav"]


@pytest.mark.parametrize("voice", ["espeak", "piper"])
def test_the_speaking_rate_changes_how_long_the_quote_lasts(tmp_path, voice, voices):
    lasts = {}
    for speed in ("slower", "normal", "faster"):
        folder = tmp_path / speed
        folder.mkdir()
        lasts[speed] = speak(
            order(QUOTES["medium"], folder, speed=speed), engines_for(voice, lambda: room(400), voices)
        )
        lasts[speed] = lasts[speed].duration_s
    assert lasts["slower"] > 1.1 * lasts["normal"] and lasts["faster"] < 0.92 * lasts["normal"], lasts


def test_without_room_for_the_voice_the_generation_is_spoken_by_espeak_and_says_why(tmp_path):
    """MAX_MEMORY_MB leaves about 100 MB beside this process: the renders fit, the voice (about
    100 MB with its margin once saved, 132 MB on its first use) does not, so eSpeak NG speaks and
    the report says why."""
    limit = round(tree_rss_mb(os.getpid()) + 100)
    settings = Settings.from_env({"DATA_DIR": str(tmp_path / "data"), "MAX_MEMORY_MB": str(limit)})
    result = generate(Request(QUOTES["short"], tts="piper", tier="low"), settings)
    assert result.status == "ok" and result.tts_engine == "espeak" and result.tts_peak_mb is None
    assert result.tts_fallback_reason.startswith("piper: not enough memory for the neural voice")


def test_the_voice_is_saved_once_then_its_weights_are_mapped_not_copied(tmp_path):
    """The first use saves the voice (within what is reserved for it); every later one maps its
    60 MB of weights from that file, so its own memory is well under the shipped model's size."""
    models = tmp_path / "models"
    speeches = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        speeches.append(PiperEngine(lambda: room(400), models).synthesize(order("Hello.", tmp_path / name)))
    first, later = speeches
    saved = saved_voice(models)
    assert saved.is_file() and (saved.parent / "voice.weights").stat().st_size > 50_000_000
    assert [p.name for p in models.iterdir()] == [saved.parent.name]  # nothing half-saved left
    assert first.peak_rss_mb <= FIRST_USE_MB + margin_mb(FIRST_USE_MB)
    assert later.peak_rss_mb < 80  # the shipped model copied into the process alone is 60 MB over its ~45
    assert first.path.read_bytes() == later.path.read_bytes()  # the voice saved on first use speaks as the kept one


def test_two_first_uses_at_once_both_speak_and_one_voice_is_kept(tmp_path):
    models = tmp_path / "models"
    folders = [tmp_path / name for name in ("a", "b")]
    for folder in folders:
        folder.mkdir()
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda f: PiperEngine(lambda: room(400), models).synthesize(order("Hi.", f)),
                             folders))  # fmt: skip
    assert [s.engine for s in done] == ["piper", "piper"]
    assert [p.name for p in models.iterdir()] == [saved_voice(models).parent.name]


def test_a_voice_that_cannot_be_saved_hands_over_to_espeak_saying_what_to_do(tmp_path):
    (tmp_path / "models").write_text("in the way")
    engines = engines_for("piper", lambda: room(400), tmp_path / "models")
    speech = speak(order("Stay hungry.", tmp_path), engines)
    assert speech.engine == "espeak"
    assert re.match(
        r"piper: the neural voice failed: OSError: could not save the voice in .*models \(.+\); "
        r"check that DATA_DIR is writable and has room",
        speech.fallback_reason,
    ), speech.fallback_reason


def test_a_voice_cut_short_by_a_full_disk_is_never_kept_and_espeak_speaks(tmp_path):
    """Files limited to 20 MB (the weights are 62.5): the runtime's write fails part-way."""
    script = textwrap.dedent("""
        import resource, sys
        from contextlib import contextmanager
        from pathlib import Path
        from engine.speech import SpeechOrder, engines_for, speak
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000_000, 20_000_000))

        @contextmanager
        def room():
            yield 400.0

        engines = engines_for("piper", room, Path(sys.argv[2]))
        speech = speak(SpeechOrder("Stay hungry.", "en", Path(sys.argv[1])), engines)
        print(speech.engine)
        print(speech.fallback_reason)
    """)  # fmt: skip
    (tmp_path / "out").mkdir()
    argv = [sys.executable, "-c", script, str(tmp_path / "out"), str(tmp_path / "models")]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    engine, reason = done.stdout.splitlines()[-2:]
    assert engine == "espeak", done.stderr[-500:]
    assert re.fullmatch(
        r"piper: the neural voice failed: OSError: could not save the voice in .*models \(.+\); "
        r"check that DATA_DIR is writable and has room",
        reason,
    ), reason
    assert list((tmp_path / "models").iterdir()) == []  # no voice, no half-saved folder


def test_a_damaged_voice_is_saved_again_and_what_a_stopped_saving_left_is_removed(tmp_path):
    models = tmp_path / "models"
    voice = PiperEngine(lambda: room(400), models)
    voice.save_voice(tmp_path)
    saved = saved_voice(models)
    with open(saved.parent / "voice.weights", "r+b") as weights:  # a crash of the machine while it was written
        weights.truncate(1_000_000)
    host = socket.gethostname()
    gone, alive = models / f".saving-999999999-{host}~x", models / f".saving-{os.getpid()}-{host}~y"
    gone.mkdir()
    alive.mkdir()
    assert voice.synthesize(order("Hello.", tmp_path)).engine == "piper"
    assert (saved.parent / "voice.weights").stat().st_size > 50_000_000
    assert sorted(p.name for p in models.iterdir()) == sorted([saved.parent.name, alive.name])


def test_the_voices_first_use_is_not_learned_as_its_need(settings, store):
    """Saving the voice takes more than speaking with it; the cost model learns from the rest."""
    request = Request("Stay hungry.", tts="piper", tier="low")
    first = generate(request, settings, store=store)
    later = generate(request, settings, store=store)
    assert (first.tts_engine, later.tts_engine) == ("piper", "piper")
    assert first.tts_peak_mb is None and max(r for _, r in first.timeline) > 90  # saving: on the timeline
    assert 40 < later.tts_peak_mb < 80
    assert [peak for _, peak in store.recent_speech_peaks(host_name())] == [later.tts_peak_mb]
