"""Music under the voice: the beds the project makes itself, and uploads checked by their content.

A bed is synthesised with NumPy the first time it is asked for (nothing is downloaded) and kept in
DATA_DIR/music: a seamless 16 s loop at 48 kHz stereo. Its loudness is kept beside it once measured
(the measure is a pass over the file, 0.09 s, which every mix took). An upload must be an MP3, WAV, OGG or M4A
by its first bytes, at most MAX_MUSIC_BYTES, with an audio stream ffmpeg can read, at most
MAX_MUSIC_S long.
"""

from __future__ import annotations

import logging
import math
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.choices import MUSIC_BEDS
from engine.errors import InvalidInput, RenderFailed
from engine.files import write_aside

log = logging.getLogger(__name__)

MAX_MUSIC_BYTES = 20 * 2**20
MAX_MUSIC_S = 600.0
RATE = 48_000
LOOP_S = 16.0  # 8 bars at 120 bpm: every pattern below repeats within it
VERSION = 1  # bump when a bed's sound changes, so cached files are made again


@dataclass(frozen=True)
class Music:
    """A file to mix under the voice, and its integrated loudness."""

    path: Path
    integrated_lufs: float


def check_upload(data: bytes, scratch: Path | None = None) -> str:
    """The upload's format (mp3, wav, ogg, m4a) by its content, or InvalidInput saying why not.
    It is probed from a file in `scratch` (DATA_DIR's temp folder: the system's may be in memory)."""
    if len(data) > MAX_MUSIC_BYTES:
        raise InvalidInput(f"the music file is {len(data) / 2**20:.0f} MB, over the 20 MB limit; use a smaller one")
    kind = _kind(data)
    if kind is None:
        raise InvalidInput("the music file is not an MP3, WAV, OGG or M4A (judged by its content); choose one that is")
    from engine.render import ffmpeg

    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="music-", dir=scratch) as folder:
        path = Path(folder) / f"upload.{kind}"
        path.write_bytes(data)
        try:
            found = ffmpeg.probe(path)
        except RenderFailed:
            found = None
        if found is None or not found.audio_codec:
            raise InvalidInput(
                f"the music file looks like {kind.upper()} but has no sound ffmpeg can read; re-export it"
            )
        if found.duration_s > MAX_MUSIC_S:
            raise InvalidInput(
                f"the music file lasts {found.duration_s / 60:.0f} min, over the {MAX_MUSIC_S / 60:.0f} min limit; "
                "trim it"
            )
    return kind


def read_music(path: Path) -> bytes:
    """A music file's bytes (judged later by `check_upload`), or InvalidInput: too big, unreadable."""
    try:
        if path.stat().st_size > MAX_MUSIC_BYTES:
            raise InvalidInput(f"{path.name} is over {MAX_MUSIC_BYTES // 2**20} MB; use a shorter or smaller file")
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read the music file {path} ({exc.strerror})") from None


def _kind(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"OggS":
        return "ogg"
    if data[4:8] == b"ftyp":
        return "m4a"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


def music_file(name: str, upload: bytes | None, data_dir: Path, work_dir: Path) -> Music | None:
    """The music to mix under the voice: a bed (made and measured once), the upload (written to the
    job's folder and measured), or None."""
    from engine.audio.loudness import integrated

    if name == "none":
        return None
    if name == "upload":
        if upload is None:
            raise InvalidInput("music 'upload' needs a file; choose one or pick a bed")
        path = work_dir / f"music.{_kind(upload) or 'bin'}"
        path.write_bytes(upload)
        return Music(path, integrated(path))
    if name not in MUSIC_BEDS:
        raise InvalidInput(f"music {name!r} is not offered; choose one of: none, {', '.join(MUSIC_BEDS)}")
    path = bed(name, data_dir / "music")
    kept = _loudness_file(path)
    try:
        lufs = float(kept.read_text())
        if math.isfinite(lufs):
            return Music(path, lufs)
    except (OSError, ValueError):  # not measured yet, or the file is damaged: measured again
        pass
    lufs = integrated(path)
    try:
        write_aside(kept, lambda partial: partial.write_text(f"{lufs}\n"))
    except OSError as exc:  # a folder we may read but not write: measured each time, as before
        log.warning("the bed's loudness is not kept beside it: %s", exc)
    return Music(path, lufs)


def _loudness_file(bed_path: Path) -> Path:
    """Where a bed's integrated loudness is kept once measured (LUFS, as text)."""
    return bed_path.with_suffix(".lufs")


def bed(name: str, folder: Path) -> Path:
    """The bed's WAV in `folder`, synthesised the first time (written aside, then renamed: a
    concurrent first use never reads half a file)."""
    path = folder / f"{name}-v{VERSION}.wav"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    _loudness_file(path).unlink(missing_ok=True)  # a loudness kept for a bed made before is not this one's
    samples = _SYNTHS[name]()

    def write(partial: Path) -> None:
        with wave.open(str(partial), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(RATE)
            out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())

    write_aside(path, write)
    return path


def _time() -> np.ndarray:
    return np.arange(int(LOOP_S * RATE)) / RATE


def _hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def _stereo(left: np.ndarray, right: np.ndarray, peak: float = 0.5) -> np.ndarray:
    both = np.stack([left, right], axis=1)
    return both * (peak / max(1e-9, float(np.abs(both).max())))


def _pad() -> np.ndarray:
    """A soft chord pad: A minor to F major and back, slightly detuned partials, slow swell."""
    t = _time()
    chords = [(57, 60, 64), (53, 57, 60)]  # Am, F: each half of the loop
    half = len(t) // 2
    left, right = np.zeros_like(t), np.zeros_like(t)
    for index, chord in enumerate(chords):
        part = slice(index * half, (index + 1) * half)
        for note in chord:
            f = _hz(note)
            left[part] += np.sin(2 * np.pi * f * 0.998 * t[part]) + 0.3 * np.sin(4 * np.pi * f * t[part])
            right[part] += np.sin(2 * np.pi * f * 1.002 * t[part]) + 0.3 * np.sin(4 * np.pi * f * t[part])
    swell = 0.75 + 0.25 * np.sin(2 * np.pi * t / LOOP_S * 2)
    ramp = int(0.2 * RATE)  # each chord swells in and out: no click where they meet (or where the loop does)
    one = np.ones(half)
    one[:ramp], one[-ramp:] = np.linspace(0, 1, ramp), np.linspace(1, 0, ramp)
    edge = np.tile(one, 2)
    return _stereo(left * swell * edge, right * swell * edge, 0.4)


def _piano() -> np.ndarray:
    """A piano-like arpeggio: struck notes with a few decaying harmonics, eighth notes at 120 bpm."""
    t = _time()
    pattern = [57, 60, 64, 69, 64, 60, 53, 57, 60, 65, 60, 57]
    step = int(0.25 * RATE)
    left, right = np.zeros_like(t), np.zeros_like(t)
    for index in range(len(t) // step):
        note = pattern[index % len(pattern)]
        start = index * step
        length = min(len(t) - start, int(1.2 * RATE))
        local = np.arange(length) / RATE
        f = _hz(note)
        tone = sum(np.sin(2 * np.pi * f * k * local) * np.exp(-local * (2.5 + k)) / k for k in (1, 2, 3, 4))
        tone *= np.minimum(1.0, local / 0.004)  # no click at the strike
        pan = 0.35 + 0.3 * ((note - 53) / 16)
        left[start : start + length] += tone * (1 - pan)
        right[start : start + length] += tone * pan
    return _stereo(left, right, 0.45)


def _pulse() -> np.ndarray:
    """A soft pulse: a low thump on each beat and a filtered bass line, 120 bpm."""
    t = _time()
    beat = int(0.5 * RATE)
    out = np.zeros_like(t)
    local = np.arange(beat) / RATE
    thump = np.sin(2 * np.pi * (55 + 60 * np.exp(-local * 30)) * local) * np.exp(-local * 9)
    for start in range(0, len(t) - beat + 1, beat):
        out[start : start + beat] += thump
    bass_notes = [45, 45, 41, 43]  # A, A, F, G: a bar each, twice over the loop
    bar = len(t) // 8
    for index in range(8):
        part = slice(index * bar, (index + 1) * bar)
        out[part] += (
            0.35
            * np.sin(2 * np.pi * _hz(bass_notes[index % 4]) * t[part])
            * (0.6 + 0.4 * np.cos(2 * np.pi * t[part] * 2))
        )
    return _stereo(out, out, 0.5)


_SYNTHS = {"pad": _pad, "piano": _piano, "pulse": _pulse}
