"""The sound encoded in two halves at a pause: where it is split, and that the joined stream is the
whole one (real ffmpeg encodes, decoded and compared with the source)."""

import wave
from pathlib import Path

import numpy as np
import pytest

from engine.render import ffmpeg
from engine.render.isolation import run_isolated
from engine.render.sound import FRAME, encode, split_at
from engine.render.spec import AUDIO_RATE
from tests.render.test_render import make_job

RATE = 22050  # the offline voices' rate


def tones(path: Path, pauses: list[tuple[float, float]], length_s: float) -> Path:
    """A mono 16-bit WAV of a tone that changes pitch every 0.25 s, silent in `pauses` (start, end s)."""
    t = np.arange(round(length_s * RATE)) / RATE
    pitch = 220 * 2 ** ((np.floor(t / 0.25) % 7) / 12)
    signal = 0.4 * np.sin(2 * np.pi * np.cumsum(pitch) / RATE)
    for start, end in pauses:
        signal[round(start * RATE) : round(end * RATE)] = 0
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes((signal * 32767).astype("<i2").tobytes())
    return path


def test_the_split_is_a_whole_frame_into_the_pause_nearest_the_middle(tmp_path):
    # Middle at 2.0 s. The frame that ends the first half must leave 1,024 samples (21 ms) of
    # silence either side, so the pause's last usable frame boundary is at 1.664 s: 78 frames.
    assert split_at(tones(tmp_path / "a.wav", [(1.5, 1.7)], 4.0)) == 78 * FRAME
    # Of two pauses, the one nearer the middle: its first usable boundary, 21 ms and a 10 ms frame in.
    assert split_at(tones(tmp_path / "b.wav", [(1.2, 1.5), (2.05, 2.4)], 4.0)) == 98 * FRAME


@pytest.mark.parametrize(
    "pauses",
    [
        [],  # no pause at all
        [(0.5, 0.9)],  # only in the first quarter
        [(1.9, 1.93)],  # too short: 30 ms, where the window across the split is 43 ms
    ],
)
def test_no_split_without_a_pause_in_the_middle_half(tmp_path, pauses):
    assert split_at(tones(tmp_path / "a.wav", pauses, 4.0)) is None


def test_the_emergency_render_and_a_mix_encode_the_sound_whole(tmp_path, speech_wav):
    """The emergency render is the smallest and sets the floor: a second encoder is not its trade.
    A mix with music is never silent (this one is, to show that it is not even looked at)."""
    wav = tones(tmp_path / "a.wav", [(1.5, 1.7)], 4.0)
    for method, stereo, files in (("ffmpeg", False, 2), ("emergency", False, 1), ("ffmpeg", True, 1)):
        spec = make_job(tmp_path, method, "low", speech_wav, audio_path=str(wav), duration_s=4.0, audio_stereo=stereo)
        assert len(encode(spec, tmp_path).files) == files


def test_no_split_of_what_is_not_a_16_bit_wav(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"not a wav at all")
    assert split_at(tmp_path / "a.wav") is None
    assert split_at(tmp_path / "missing.wav") is None
    with wave.open(str(tmp_path / "wide.wav"), "wb") as out:  # 24-bit: read as 16-bit, its silence would be noise
        out.setnchannels(1)
        out.setsampwidth(3)
        out.setframerate(RATE)
        out.writeframes(bytes(3 * RATE * 4))
    assert split_at(tmp_path / "wide.wav") is None
    truncated = tones(tmp_path / "cut.wav", [(1.5, 1.7)], 4.0)
    truncated.write_bytes(truncated.read_bytes()[:-1])  # an odd number of bytes: half a sample
    assert split_at(truncated) is None  # not a traceback


def decoded(path: Path) -> np.ndarray:
    """The first audio stream of `path` as mono 16-bit samples at 48 kHz."""
    raw = path.with_suffix(".raw")
    ffmpeg.run(["-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", str(AUDIO_RATE), "-f", "s16le", str(raw)])
    samples = np.frombuffer(raw.read_bytes(), dtype="<i2").astype(np.float64)
    raw.unlink()
    return samples


def snr_db(video: Path, source: np.ndarray, around: int) -> float:
    """The video's sound against the source within 4,096 samples of `around`; the encoder's 1,024
    priming samples are played (no edit list)."""
    sound = decoded(video)[FRAME:]
    assert len(sound) == pytest.approx(len(source), abs=FRAME)
    near = slice(around - 4 * FRAME, around + 4 * FRAME)
    error = sound[near] - source[near]
    return float(10 * np.log10(np.sum(source[near] ** 2) / np.sum(error**2)))


def test_the_halves_join_into_the_whole_sound(tmp_path, speech_wav):
    wav = tones(tmp_path / "tones.wav", [(1.9, 2.0)], 4.0)
    at = split_at(wav)
    assert at is not None
    source = decoded(wav)
    results = {}
    for threads in (1, 2):  # one core: encoded whole
        job = tmp_path / f"threads-{threads}"
        job.mkdir()
        spec = make_job(job, "ffmpeg", "low", speech_wav, audio_path=str(wav), duration_s=4.0, threads=threads)
        assert len(encode(spec, job).files) == threads
        run = run_isolated(spec, budget_mb=4000)
        assert run.status == "ok", run.error
        assert sorted(p.name for p in job.iterdir()) == ["card.png", "out.mp4"]  # the halves are removed
        assert ffmpeg.probe(Path(spec.out_path)).audio_channels == "stereo"
        results[threads] = snr_db(Path(spec.out_path), source, at)
        raw = job / "both.raw"  # coded as one channel and made stereo (engine.render.aac_stereo)
        ffmpeg.run(["-i", spec.out_path, "-map", "0:a:0", "-f", "s16le", str(raw)])
        both = np.frombuffer(raw.read_bytes(), dtype="<i2").reshape(-1, 2)
        assert len(both) > 3 * AUDIO_RATE and np.array_equal(both[:, 0], both[:, 1])
    # Joined without dropping the second half's first frame, it reads 5.0 dB here (measured).
    assert results[1] > 30
    assert results[2] == pytest.approx(results[1], abs=1.0)
