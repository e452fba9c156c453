"""The mono AAC encode made stereo in its bitstream: real ffmpeg encodes, rewritten, decoded."""

import wave
from pathlib import Path

import numpy as np
import pytest

from engine.errors import RenderFailed
from engine.render import ffmpeg
from engine.render.aac_stereo import make_stereo, stereo
from engine.render.spec import aac
from engine.speech.base import SpeechOrder
from engine.speech.espeak import EspeakEngine
from tests.helpers import QUOTES


def speech_and_clicks(folder: Path) -> Path:
    """Real speech (where the encoder uses temporal noise shaping unless told not to: with it, the two
    channels decode apart and the first test fails, checked), then a tone with a click every 0.3 s
    (which makes it switch to eight short windows)."""
    speech = EspeakEngine().synthesize(SpeechOrder("Stay hungry, stay foolish; keep looking.", "en", folder))
    with wave.open(str(speech.path)) as said:
        rate, voice = said.getframerate(), np.frombuffer(said.readframes(said.getnframes()), dtype="<i2")
    t = np.arange(rate) / rate
    tone = 0.2 * np.sin(2 * np.pi * 330 * t)
    tone[:: round(0.3 * rate)] = 0.95
    path = folder / "source.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(voice.tobytes() + (tone * 32767).astype("<i2").tobytes())
    return path


def encoded(source: Path, out: Path, options: list[str]) -> Path:
    ffmpeg.run(["-i", str(source), *options, "-f", "adts", str(out)])
    return out


def channels(path: Path, count: int) -> np.ndarray:
    """Decoded samples of `path`, one column a channel (checked to be `count`)."""
    raw = path.with_suffix(".raw")
    ffmpeg.run(["-i", str(path), "-f", "s16le", str(raw)])
    assert ffmpeg.probe(path).audio_channels == ("stereo" if count == 2 else "mono")
    samples = np.frombuffer(raw.read_bytes(), dtype="<i2").reshape(-1, count)
    raw.unlink()
    return samples


def windows(data: bytes) -> list[int]:
    """Each ADTS frame's window sequence (2 is eight short windows), read after its SCE's id, tag,
    global gain and reserved bit."""
    found, at = [], 0
    while at < len(data):
        length = (data[at + 3] & 3) << 11 | data[at + 4] << 3 | data[at + 5] >> 5
        first = int.from_bytes(data[at + 7 : at + 10], "big")
        found.append((first >> (24 - 18)) & 3)
        at += length
    return found


@pytest.mark.parametrize("kbps", [128, 32])
def test_both_channels_decode_to_the_mono_encode_sample_for_sample(tmp_path, kbps):
    mono = encoded(speech_and_clicks(tmp_path), tmp_path / "mono.aac", aac(kbps, "one"))
    assert 2 in windows(mono.read_bytes())  # the short windows' grouping is read (and long ones)
    assert 0 in windows(mono.read_bytes())
    made = tmp_path / "stereo.aac"
    made.write_bytes(mono.read_bytes())
    make_stereo(made)
    left_right, alone = channels(made, 2), channels(mono, 1)
    assert len(left_right) == len(alone) > 2 * 48000
    assert np.array_equal(left_right[:, 0], left_right[:, 1])
    assert np.array_equal(left_right[:, 0], alone[:, 0])
    assert made.stat().st_size - mono.stat().st_size < len(windows(mono.read_bytes())) * 6  # 30-odd bits a frame


@pytest.mark.parametrize(
    "options, why",
    [
        (aac(128), "not a mono AAC-LC frame"),  # already stereo
        # Noise substitution left on, on noise at a low bitrate: a noise band would decode on the
        # left channel only.
        (["-c:a", "aac", "-aac_coder", "fast", "-b:a", "32k", "-ac", "1", "-aac_tns", "0", "-flags:a", "+bitexact"],
         "codebook 13"),
    ],
)  # fmt: skip
def test_a_stream_it_cannot_mirror_is_refused_and_left_as_it_was(tmp_path, options, why):
    source = tmp_path / "noise.wav"
    ffmpeg.run(["-f", "lavfi", "-i", "anoisesrc=d=2:c=white:a=0.3:r=22050", str(source)])
    path = encoded(source, tmp_path / "in.aac", options)
    before = path.read_bytes()
    with pytest.raises(RenderFailed, match=why) as caught:
        make_stereo(path)
    assert "report it" in str(caught.value)
    assert path.read_bytes() == before


def test_what_is_not_adts_is_refused_with_a_sentence(tmp_path):
    mono = encoded(speech_and_clicks(tmp_path), tmp_path / "mono.aac", aac(64, "one"))
    data = mono.read_bytes()
    for bad, why in ((b"not an aac stream", "no ADTS frame at byte 0"), (data[:-5], "a frame of"), (b"", None)):
        if why is None:
            assert stereo(bad) == b""  # nothing to rewrite: an empty file stays empty
            continue
        with pytest.raises(ValueError, match=why):
            stereo(bad)
    with pytest.raises(FileNotFoundError):  # our own file gone: reported as a failed write, not as the encode's
        make_stereo(tmp_path / "gone.aac")


@pytest.fixture(scope="module")
def dense_speech(tmp_path_factory) -> Path:
    """The long quote (about 32 s) spoken with few pauses: where the encoder overshoots most."""
    return EspeakEngine().synthesize(SpeechOrder(QUOTES["long"], "en", tmp_path_factory.mktemp("dense"))).path


@pytest.mark.parametrize("kbps", [128, 64, 48, 32])  # each tier's
def test_the_stream_made_stereo_keeps_near_the_tiers_bitrate(tmp_path, dense_speech, kbps):
    """ffmpeg's encoder spends more than it is asked, on one channel more than on two: asked for the
    tier's bitrate as it is, the long quote's sound came to 1.22 to 1.28 times it at 64k, 48k and 32k
    (what a file's cap was not set for); asked for less (spec.one_channel_kbps), 1.03 to 1.10 (both
    measured; at 128k, 1.07 and 1.02). The ADTS headers, which the MP4 does not keep, are left out."""
    made = encoded(dense_speech, tmp_path / "one.aac", aac(kbps, "one"))
    make_stereo(made)
    frames = len(windows(made.read_bytes()))
    with wave.open(str(dense_speech)) as said:
        seconds = said.getnframes() / said.getframerate()
    assert (made.stat().st_size - 7 * frames) * 8 / 1000 / seconds <= kbps * 1.15
