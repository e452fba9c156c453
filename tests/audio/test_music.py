"""Music under the voice: beds made here, uploads judged by their content, the mix ducked under the
voice and mastered, measured on the sound itself."""

import wave
from pathlib import Path

import numpy as np
import pytest

from engine.audio.loudness import MAX_TRUE_PEAK_DBTP, TARGET_LUFS, TOLERANCE_LU, measure
from engine.audio.master import master
from engine.audio.mix import mix
from engine.audio.music import LOOP_S, MAX_MUSIC_BYTES, RATE, bed, check_upload, music_file
from engine.errors import InvalidInput
from engine.models import Request
from engine.pipeline import generate
from engine.render import ffmpeg
from engine.render.ffmpeg import probe
from engine.speech.base import SpeechOrder
from engine.speech.espeak import EspeakEngine
from tests.helpers import QUOTES, writes_of


def read(path: Path) -> tuple[np.ndarray, int]:
    """The first channel of a 16-bit WAV, in full scale, and its rate."""
    with wave.open(str(path)) as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).reshape(-1, wav.getnchannels())
        return samples[:, 0].astype(float) / 32768, wav.getframerate()


@pytest.mark.parametrize("name", ["pad", "piano", "pulse"])
def test_a_bed_is_made_once_as_a_seamless_loop(tmp_path, name):
    made = bed(name, tmp_path)
    assert bed(name, tmp_path) == made and made.stat().st_mtime == bed(name, tmp_path).stat().st_mtime
    found = probe(made)
    assert (found.audio_rate, found.audio_channels) == (RATE, "stereo")
    assert found.duration_s == pytest.approx(LOOP_S, abs=0.01)
    samples, _ = read(made)
    assert np.sqrt((samples**2).mean()) > 0.02  # it is not silence
    assert abs(samples[-1] - samples[0]) < 0.05  # the loop's seam does not click
    assert not list(tmp_path.glob(".*"))  # nothing half-written left beside it


def test_a_beds_loudness_is_measured_once_and_kept_beside_it(tmp_path, monkeypatch):
    """Measuring a bed took a pass over it (0.09 s) every time it was mixed; now once, when it is made."""
    reads = writes_of(monkeypatch, bed("piano", tmp_path / "music"))  # the ffmpeg runs given the bed
    first = music_file("piano", None, tmp_path, tmp_path)
    assert first is not None and len(reads) == 1 and -40 < first.integrated_lufs < -10
    kept = first.path.with_suffix(".lufs")
    assert float(kept.read_text()) == first.integrated_lufs
    assert music_file("piano", None, tmp_path, tmp_path) == first and len(reads) == 1
    for damaged in ["-", "nan"]:  # measured again, and kept again
        kept.write_text(damaged)
        assert (
            music_file("piano", None, tmp_path, tmp_path) == first and float(kept.read_text()) == first.integrated_lufs
        )
    assert len(reads) == 3
    kept.write_text("-99.0")
    first.path.unlink()  # a bed made again keeps no loudness of the one before
    assert music_file("piano", None, tmp_path, tmp_path) == first and len(reads) == 4
    assert not list((tmp_path / "music").glob(".*"))  # nothing half-written left beside it


def test_a_loudness_that_cannot_be_kept_is_measured_each_time(tmp_path, monkeypatch, caplog):
    """The kept loudness only saves time: where it cannot be written, the bed is measured each time."""
    made = bed("pad", tmp_path / "music")
    made.with_suffix(".lufs").mkdir()  # in its place, something no file can replace, even root's
    reads = writes_of(monkeypatch, made)
    first, again = (music_file("pad", None, tmp_path, tmp_path) for _ in range(2))
    assert first == again and len(reads) == 2 and -40 < first.integrated_lufs < -10
    assert "the bed's loudness is not kept beside it" in caplog.text
    assert not list((tmp_path / "music").glob(".*"))


def tone_file(folder: Path, suffix: str, seconds: float = 3.0, *extra: str) -> Path:
    out = folder / f"tone{suffix}"
    ffmpeg.run(["-f", "lavfi", "-i", f"sine=f=330:d={seconds}", *extra, str(out)])
    return out


@pytest.mark.parametrize("suffix, kind", [(".wav", "wav"), (".mp3", "mp3"), (".ogg", "ogg"), (".m4a", "m4a")])
def test_uploads_in_every_offered_format_are_taken(tmp_path, suffix, kind):
    assert check_upload(tone_file(tmp_path, suffix).read_bytes()) == kind


def test_uploads_are_judged_by_content_size_and_length(tmp_path):
    with pytest.raises(InvalidInput, match="not an MP3, WAV, OGG or M4A"):
        check_upload(b"<html>a web page named song.mp3</html>")
    with pytest.raises(InvalidInput, match="over the 20 MB limit"):
        check_upload(b"RIFF" + bytes(MAX_MUSIC_BYTES))
    with pytest.raises(InvalidInput, match="no sound ffmpeg can read"):
        check_upload(b"RIFF\x00\x00\x00\x00WAVE" + bytes(2000))
    long = tone_file(tmp_path, ".wav", 660, "-ar", "8000", "-c:a", "pcm_u8")  # 11 minutes, 5 MB
    with pytest.raises(InvalidInput, match="lasts 11 min, over the 10 min limit"):
        check_upload(long.read_bytes())


@pytest.mark.parametrize("name", ["pad", "piano", "pulse"])
def test_a_mix_under_mastered_speech_is_written_once(tmp_path, monkeypatch, name):
    """The mix starts from the gain that lands it on the target, so it is written and measured once
    (each write is a pass over the whole sound)."""
    speech = master(EspeakEngine().synthesize(SpeechOrder(QUOTES["medium"], "en", tmp_path)), tmp_path / "m.wav").speech
    writes = writes_of(monkeypatch, tmp_path / "mix.wav")
    mixed = mix(speech, music_file(name, None, tmp_path, tmp_path), tmp_path / "mix.wav")
    assert len(writes) == 1 and mixed.loudness.meets_target(), mixed.loudness


def test_the_music_is_ducked_under_the_voice_and_the_mix_mastered(tmp_path):
    """Measured on the mix: the music (what is left once the voice is taken out) stays at least
    20 dB under the voice while it speaks, and comes up at least 5 dB between sentences."""
    speech = master(EspeakEngine().synthesize(SpeechOrder(QUOTES["long"], "en", tmp_path)), tmp_path / "m.wav").speech
    mixed = mix(speech, music_file("pad", None, tmp_path, tmp_path), tmp_path / "mix.wav")
    assert mixed.loudness.meets_target() and measure(mixed.speech.path) == pytest.approx(mixed.loudness, abs=0.2)
    assert mixed.speech.duration_s == pytest.approx(speech.duration_s, abs=0.01)
    voice_file = tmp_path / "voice48.wav"
    ffmpeg.run(["-i", str(speech.path), "-af", "aresample=48000", str(voice_file)])
    voice, rate = read(voice_file)
    both, _ = read(mixed.speech.path)
    n = min(len(voice), len(both))
    voice, both = voice[:n], both[:n]
    gain = float(np.dot(both, voice) / np.dot(voice, voice))  # the voice's level in the mix
    music = both - gain * voice
    frame = int(0.05 * rate)
    frames = n // frame

    def rms(signal: np.ndarray) -> np.ndarray:
        return np.sqrt((signal[: frames * frame].reshape(frames, frame) ** 2).mean(axis=1))

    spoken, under = rms(gain * voice), rms(music)
    speaking, pausing = spoken > 0.1 * spoken.max(), spoken < 0.005 * spoken.max()
    pausing[: int(2 / 0.05)] = False  # past the fade-in

    def db(a: np.ndarray, b: np.ndarray) -> float:
        return float(20 * np.log10(np.sqrt((a**2).mean()) / np.sqrt((b**2).mean())))

    assert speaking.sum() > 100 and pausing.sum() > 20
    assert db(spoken[speaking], under[speaking]) >= 20  # the voice stays clear over the music
    assert db(under[pausing], under[speaking]) >= 5  # ducked while the voice speaks


def test_a_generation_with_music_delivers_the_mix_at_streaming_loudness(settings, tmp_path):
    """The bed and an upload (shorter than the speech: looped) are heard in the delivered MP4: its
    quietest moments carry music, where the same quote without music falls silent between sentences."""
    upload = tone_file(tmp_path, ".mp3", 4.0).read_bytes()
    quietest = {}
    for music, upload_bytes in (("none", None), ("piano", None), ("upload", upload)):
        request = Request(QUOTES["medium"], tier="low", music=music, music_upload=upload_bytes)
        result = generate(request, settings)
        assert result.music == music and ("music" in result.stage_s) == (music != "none")
        sound = measure(result.output)
        assert abs(sound.integrated_lufs - TARGET_LUFS) <= TOLERANCE_LU and sound.true_peak_dbtp <= MAX_TRUE_PEAK_DBTP
        found = probe(result.output)
        assert (found.audio_codec, found.audio_rate, found.audio_channels) == ("aac", 48000, "stereo")
        assert found.duration_s == pytest.approx(result.duration_s, abs=0.05)
        quietest[music] = quietest_db(result.output, tmp_path / f"{music}.wav")
    # Measured: piano -40.4 to -40.9 dB, the upload -44.6 to -45.1 (eSpeak NG's timing varies from run
    # to run, and with it where the looped upload's quiet moments fall); silence reads -180.
    assert quietest["none"] < -55 and quietest["piano"] > -50 and quietest["upload"] > -50, quietest
    assert (settings.data_dir / "music" / "piano-v1.wav").is_file()  # the bed, made once for this host


def quietest_db(video: Path, wav: Path) -> float:
    """The 10th percentile of the sound's level in 50 ms frames, past the fade-in and before the fade-out."""
    ffmpeg.run(["-i", str(video), "-map", "0:a:0", "-ac", "1", str(wav)])
    samples, rate = read(wav)
    frame = int(0.05 * rate)
    inner = samples[int(1.0 * rate) : len(samples) - int(2.0 * rate)]
    frames = len(inner) // frame
    levels = np.sqrt((inner[: frames * frame].reshape(frames, frame) ** 2).mean(axis=1)) + 1e-9
    return float(np.percentile(20 * np.log10(levels), 10))
