"""Mastering, measured by ffmpeg's EBU R128 meter: -14 LUFS (±1 LU), true peak at most -1 dBTP,
silence at the ends trimmed to an even pad, word timings moved with it; on real speech and on
signals made to be hard (quiet, clipped, silent)."""

import wave
from pathlib import Path

import numpy as np
import pytest

from engine.audio.loudness import MAX_TRUE_PEAK_DBTP, TARGET_LUFS, TOLERANCE_LU, measure, parse_each_integrated
from engine.audio.master import (
    EDGE_S,
    MAX_GAIN_DB,
    MIN_SLOPE,
    PAD_S,
    Carrier,
    aim,
    carrier,
    master,
    relevel,
    voiced_span,
)
from engine.render.ffmpeg import probe
from engine.speech.base import Speech, SpeechOrder, WordTiming
from engine.speech.espeak import EspeakEngine
from tests.helpers import writes_of

RATE = 22050


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.clip(samples, -32768, 32767).astype("<i2").tobytes())
    return path


def tone(seconds: float, level: float, rate: int = RATE) -> np.ndarray:
    """A 220 Hz tone with its third and fifth harmonics, pulsing like syllables, at `level` of full scale."""
    t = np.arange(int(seconds * rate)) / rate
    voice = np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 660 * t) + 0.3 * np.sin(2 * np.pi * 1100 * t)
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    return level * 32767 * voice * envelope / np.abs(voice).max()


def silence(seconds: float, rate: int = RATE) -> np.ndarray:
    return np.zeros(int(seconds * rate))


def assert_mastered(path: Path) -> None:
    found = measure(path)
    assert abs(found.integrated_lufs - TARGET_LUFS) <= TOLERANCE_LU, found
    assert found.true_peak_dbtp <= MAX_TRUE_PEAK_DBTP, found


def test_offline_speech_is_mastered_to_streaming_loudness(tmp_path):
    speech = EspeakEngine().synthesize(SpeechOrder("Stay hungry. Stay foolish. Go home and rest.", "en", tmp_path))
    before = measure(speech.path)
    assert before.integrated_lufs < TARGET_LUFS - 3  # eSpeak NG speaks quieter than the target
    done = master(speech, tmp_path / "mastered.wav")
    assert_mastered(done.speech.path)
    again = measure(done.speech.path)  # what it reports is what is there
    assert done.loudness.integrated_lufs == pytest.approx(again.integrated_lufs, abs=0.2)
    assert done.loudness.true_peak_dbtp == pytest.approx(again.true_peak_dbtp, abs=0.2)
    found = probe(done.speech.path)
    assert (found.audio_rate, found.audio_channels) == (probe(speech.path).audio_rate, "mono")  # 48 kHz at encoding


@pytest.mark.parametrize(("lang", "kbps"), [("en", 128), ("fr", 128), ("en", 48), ("en", 32)])
def test_offline_speech_is_mastered_in_one_write_aimed_between_gains_measured_through_the_limiter(
    tmp_path, monkeypatch, lang, kbps
):
    quote = (
        "Twenty years from now you will be more disappointed by the things you didn't do. So throw off the bowlines."
    )
    speech = EspeakEngine().synthesize(SpeechOrder(quote, lang, tmp_path))
    writes = writes_of(monkeypatch, tmp_path / "mastered.wav")
    carried = carrier(kbps)
    done = master(speech, tmp_path / "mastered.wav", carried)
    # Aimed by its loudness before the limiter, the first write landed 0.6 to 0.9 LU short (measured);
    # with the probes' gains not moved with the ceiling, the lowest bitrate's took two.
    assert len(writes) == 1
    assert abs(done.loudness.integrated_lufs - (TARGET_LUFS + carried.lift_lu)) <= 0.5  # AIM_LU


def test_the_gain_is_aimed_between_the_points_either_side_of_the_target():
    assert aim([(6.0, -13.0), (2.0, -16.0)], -14.0) == pytest.approx(2.0 + 2.0 / 0.75)  # in any order
    # Past every point: along the last two, from the nearer.
    assert aim([(0.0, -20.0), (2.0, -18.0), (6.0, -16.0)], -14.0) == pytest.approx(6.0 + 2.0 / 0.5)
    # Under every point, or by one alone, a decibel a decibel: the limiter takes back less as gain
    # comes off, so that aim may land loud, never quiet.
    assert aim([(2.0, -10.0), (6.0, -9.0)], -14.0) == pytest.approx(2.0 - 4.0)
    assert aim([(0.0, -17.0)], -14.0) == pytest.approx(3.0)
    # A line flatter than MIN_SLOPE (or falling: a limiter that took back more than was added)
    # would aim wildly far: it is aimed along MIN_SLOPE.
    assert aim([(2.0, -15.0), (6.0, -14.9)], -14.0) == pytest.approx(6.0 + 0.9 / MIN_SLOPE)
    assert aim([(2.0, -15.0), (6.0, -15.2)], -14.0) == pytest.approx(6.0 + 1.2 / MIN_SLOPE)
    assert aim([(2.0, -15.0), (6.0, -14.0)], -14.0) == pytest.approx(6.0)  # on a point


def test_every_meter_of_one_run_is_read_in_its_place_in_the_graph():
    """ffmpeg prints the meters' summaries as the graph is torn down, the last first; the index is
    its place in the graph (compared as a number: 12 after 8). A meter that printed twice counts once."""
    summary = "[Parsed_ebur128_{} @ 0x55d0c8a3b2c0] Summary:\n\n  Integrated loudness:\n    I:         {} LUFS\n"
    log = summary.format(12, "-13.1") + summary.format(8, "-70.0") + summary.format(8, "-15.2")
    assert parse_each_integrated(log) == [-15.2, -13.1]


def test_the_lower_the_bitrate_the_lower_the_ceiling():
    assert carrier(128) == carrier(64) == Carrier(-2.5)
    assert carrier(63) == carrier(48) == Carrier(-4.5)
    assert carrier(47) == carrier(32) == Carrier(-6.5, lift_lu=0.6)
    # The speech coded as one channel keeps the ceilings; at 32k its encode takes less away.
    assert [carrier(k, one_channel=True) for k in (128, 48)] == [carrier(128), carrier(48)]
    assert carrier(32, one_channel=True) == Carrier(-6.5, lift_lu=0.3)


def test_mastered_speech_written_again_for_the_lowest_bitrate(tmp_path):
    speech = EspeakEngine().synthesize(SpeechOrder("Stay hungry. Stay foolish. Go home and rest.", "en", tmp_path))
    done = master(speech, tmp_path / "mastered.wav", carrier(128))
    lowest = carrier(32)
    again = relevel(done.speech.path, done.loudness, lowest, tmp_path / "again.wav")
    found = measure(tmp_path / "again.wav")
    assert abs(found.integrated_lufs - (TARGET_LUFS + lowest.lift_lu)) <= 0.5  # AIM_LU, lifted for the encode
    # 4 dB lower a ceiling; the true peak (4x oversampled) reads up to 2.3 dB over the sample ceiling.
    assert found.true_peak_dbtp < done.loudness.true_peak_dbtp - 1.5
    assert again.integrated_lufs == pytest.approx(found.integrated_lufs, abs=0.2)


@pytest.mark.parametrize("level", [0.02, 1.0], ids=["quiet", "clipped"])
def test_a_quiet_and_a_clipped_voice_both_end_at_the_target(tmp_path, level):
    signal = tone(6.0, level)
    if level == 1.0:
        signal = np.clip(signal * 4, -32767, 32767)  # square-ish: true peaks above the samples
    source = write_wav(tmp_path / "in.wav", signal)
    done = master(Speech(source, 6.0, "espeak"), tmp_path / "out.wav")
    assert_mastered(done.speech.path)


def test_a_voice_too_quiet_to_reach_the_target_is_raised_by_the_most_allowed_once(tmp_path, monkeypatch):
    source = write_wav(tmp_path / "in.wav", tone(6.0, 0.004))
    before = measure(source).integrated_lufs
    writes = writes_of(monkeypatch, tmp_path / "out.wav")
    done = master(Speech(source, 6.0, "espeak"), tmp_path / "out.wav")
    assert len(writes) == 1  # a second write at the same (greatest) gain would be the same
    assert done.loudness.integrated_lufs == pytest.approx(before + MAX_GAIN_DB, abs=1.0)
    assert done.loudness.integrated_lufs < TARGET_LUFS - TOLERANCE_LU


def test_silence_at_the_ends_is_trimmed_to_an_even_pad_and_words_move_with_it(tmp_path):
    signal = np.concatenate([silence(1.2), tone(2.0, 0.3), silence(0.4), tone(1.0, 0.3), silence(2.5)])
    source = write_wav(tmp_path / "in.wav", signal)
    words = (WordTiming("one", 1.2, 3.2, 0), WordTiming("two", 3.6, 4.6, 4))
    done = master(Speech(source, len(signal) / RATE, "espeak", words), tmp_path / "out.wav")
    start, end = voiced_span(done.speech.path)
    lead, trail = start, done.speech.duration_s - end
    assert lead == pytest.approx(PAD_S, abs=0.03) and trail == pytest.approx(PAD_S, abs=0.03)
    assert done.speech.duration_s == pytest.approx(3.4 + 2 * (PAD_S + EDGE_S), abs=0.02)  # 10 ms frames
    assert [w.start_s for w in done.speech.words] == pytest.approx([PAD_S + EDGE_S, PAD_S + EDGE_S + 2.4], abs=0.02)
    assert_mastered(done.speech.path)


def test_a_silent_recording_is_left_silent_without_an_error(tmp_path):
    source = write_wav(tmp_path / "in.wav", silence(1.0))
    done = master(Speech(source, 1.0, "espeak"), tmp_path / "out.wav")
    assert done.speech.duration_s == pytest.approx(1.0 + 2 * PAD_S, abs=0.02)
    assert done.loudness.integrated_lufs < -60
