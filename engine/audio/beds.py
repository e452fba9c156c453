"""The project's own music beds, synthesised with NumPy: each a seamless LOOP_S loop at RATE,
stereo. engine.audio.music imports this when it makes a bed, once per DATA_DIR."""

from __future__ import annotations

import numpy as np

from engine.audio.music import LOOP_S, RATE


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


def pcm16(name: str) -> bytes:
    """The bed `name`'s loop as 16-bit stereo PCM frames, interleaved."""
    return (np.clip(_SYNTHS[name](), -1, 1) * 32767).astype("<i2").tobytes()
