"""A 16-bit WAV's level, 10 ms at a time, read a second at a time: a long speech costs no more
memory than a short one. Mastering trims by it; the sound's encode splits at a pause by it."""

from __future__ import annotations

import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FRAME_S = 0.01


@dataclass(frozen=True)
class Levels:
    """Each 10 ms frame's RMS and peak (of the loudest channel, in 16-bit units), in order."""

    rms: np.ndarray
    peak: np.ndarray
    frame_s: float  # a frame's exact length (a whole number of samples)
    length_s: float  # the whole file's


def levels(path: Path) -> Levels:
    """The frame levels of a 16-bit PCM WAV (a partial last frame is left out); wave.Error for
    another sample width."""
    rms: list[np.ndarray] = []
    peak: list[np.ndarray] = []
    with wave.open(str(path), "rb") as wav:
        rate, channels, total = wav.getframerate(), wav.getnchannels(), wav.getnframes()
        if wav.getsampwidth() != 2:
            raise wave.Error(f"{path.name} is not 16-bit PCM")
        frame = max(1, round(rate * FRAME_S))
        for block in _blocks(wav, frame * 100, channels):
            usable = len(block) // frame * frame
            if usable == 0:
                break
            framed = block[:usable].reshape(-1, frame, channels)
            rms.append(np.sqrt(np.mean(framed**2, axis=1)).max(axis=1))
            peak.append(np.abs(framed).max(axis=(1, 2)))
    empty = np.zeros(0, dtype=np.float32)
    return Levels(
        np.concatenate(rms) if rms else empty, np.concatenate(peak) if peak else empty, frame / rate, total / rate
    )


def _blocks(wav: wave.Wave_read, frames: int, channels: int) -> Iterator[np.ndarray]:
    while chunk := wav.readframes(frames):
        yield np.frombuffer(chunk, dtype="<i2").reshape(-1, channels).astype(np.float32)
