"""Speech mastered for streaming, whichever engine spoke it: leading and trailing silence trimmed
to an even pad, −14 LUFS integrated with true peak under −1 dBTP; mono at the voice's own rate (the
AAC encoder makes it 48 kHz stereo: the file is a quarter of its 48 kHz stereo size, which matters
to a disk that is nearly full, and the true-peak meter oversamples either way).

ffmpeg's `ebur128` meter measures (a BS.1770 implementation we do not write ourselves); a gain and
a look-ahead limiter make the level. The limiter shaves the peaks the gain pushes past the ceiling
(eSpeak NG speaks at about −18 LUFS with peaks near full scale, so it has to), which lowers the
loudness: the gain alone left eSpeak NG's first write 0.7 to 1.4 LU short, and every bench quote
took a second write or a third. The first write's gain now allows for it, from the limiter run over
the voice's 10 ms frame levels (`limited_loss_db`: under a millisecond of NumPy on the levels the
trim reads): one write for most (measured at AIM_STEPS), 0.15 s for the 32 s of the long quote where
two took 0.24 s. Each write is measured as it is made, and one that lands more than AIM_LU off is
made again with the difference added. ffmpeg's `loudnorm` was tried first: it took 1.7 s for 32 s
(it works at 192 kHz) and, in its linear mode, left the short quote at −17.4 LUFS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from engine.audio.levels import Levels, levels
from engine.audio.loudness import LOUDNESS_METER, METER, TARGET_LUFS, Loudness, parse_integrated, parse_summary
from engine.render import ffmpeg
from engine.speech.base import Speech, wav_duration_s

PAD_S = 0.25  # silence left before the first word and after the last
SILENCE_DBFS = -45.0  # a 10 ms frame quieter than this (RMS) is silence
EDGE_S = 0.02  # kept beyond the first and last loud frame: soft onsets and endings


@dataclass(frozen=True)
class Carrier:
    """What mastering leaves for the AAC encode that will carry the sound: room under the limiter's
    ceiling for the peaks the encode adds, and the loudness it takes away, aimed above the target."""

    ceiling_dbfs: float  # the limiter's, in sample peak
    lift_lu: float = 0.0

    def delivered(self, written: Loudness) -> Loudness:
        """The loudness of sound written for this encode, as the encode delivers it: the integrated
        level less the lift (the true peak stays the file's)."""
        return replace(written, integrated_lufs=round(written.integrated_lufs - self.lift_lu, 1))


# By the least AAC bitrate (kbit/s, stereo) each applies to. The encoder's noise and band limit
# (about 16 kHz at 128k, 9.5 kHz at 64k, 5.8 kHz at 48k, 3.2 kHz at 32k) raise the true peak over the
# limiter's ceiling, the more the lower the bitrate, and erratically: measured on the bench quotes,
# both offline voices, alone and under every bed, the delivered true peak was at most -2.2 dBTP at
# 128k and -1.7 at 64k over a -2.5 dBFS ceiling; at 48k -1.2 over -2.5 (-0.7 for one run's eSpeak
# NG, which varies from run to run), -1.4 over -4.0 and -3.0 over -4.5; at 32k +1.2 over -2.5, -0.1
# over -4.5 and -3.1 over -6.5, where the encode also takes 0.6 to 1.0 LU away (its band ends at
# 3.2 kHz).
CARRIERS = ((64, Carrier(-2.5)), (48, Carrier(-4.5)), (0, Carrier(-6.5, lift_lu=0.6)))
BEST = CARRIERS[0][1]
AIM_LU = 0.5  # half the tolerance: the AAC encoding moves it by about 0.1
MAX_PASSES = 3
MIN_SLOPE = 0.25  # of loudness gained per decibel added, aimed with: less would overshoot wildly
# What a limited voice keeps of an added decibel: 0.4 to 0.6 for Piper and eSpeak NG (measured).
FIRST_SLOPE = 0.5
MAX_GAIN_DB = 30.0
# The frames' model overstates the limiter's loss (it cuts a whole frame as deep as its peak needs), the
# more the harder the limiter works: where it works hardest (nearly every frame at the ceiling, as in
# a re-level for 32k), each step adds about as much as the last, and the step count bounds the gain
# (the real limiter is nearly as flat there: those writes land, or the retries below correct them). Six
# steps land the first write within AIM_LU in 30 of the 36 bench cases (eSpeak NG at three speeds and
# Piper, on the three quotes, at the three ceilings; 11 of 12 at -2.5 dBFS, the shortest Piper quote
# missing), where the difference alone landed none (measured).
AIM_STEPS = 6
RELEASE_MS = 50.0  # the limiter's, below
# Frames the model counts, like the meter's gates (which it cannot copy: they work on 400 ms blocks,
# K-weighted): louder than GATE_DBFS, and no more than RELATIVE_GATE_DB under the mean of those.
GATE_DBFS = -60.0
RELATIVE_GATE_DB = 20.0


@dataclass(frozen=True)
class Mastered:
    speech: Speech  # the mastered WAV, its duration and the word timings moved with the trim
    loudness: Loudness  # as measured on the mastered WAV


def carrier(audio_kbps: int) -> Carrier:
    """What mastering leaves for an AAC encode at `audio_kbps`."""
    return next(found for least, found in CARRIERS if audio_kbps >= least)


def master(speech: Speech, out: Path, carried: Carrier = BEST) -> Mastered:
    """Write `speech`, mastered for an encode that leaves `carried`, to `out` (a WAV)."""
    found = levels(speech.path)
    start_s, end_s = _voiced(found)
    inputs = [["-i", str(speech.path)]]
    before = _loudness(inputs, f"[0:a:0]atrim=start={start_s:.4f}:end={end_s:.4f},{LOUDNESS_METER}")
    # The meter reads the mono signal as the two identical channels the encoder makes of it.
    shape = (
        f"[0:a:0]atrim=start={start_s:.4f}:end={end_s:.4f},asetpts=PTS-STARTPTS,aformat=channel_layouts=mono,"
        f"adelay={PAD_S * 1000:.0f},apad=pad_dur={PAD_S}"
    )
    loudness = level(inputs, shape, before, out, carried, aimed_gain(found, before, carried))
    shift = PAD_S - start_s
    duration = wav_duration_s(out)
    words = tuple(
        replace(w, start_s=_clamp(w.start_s + shift, duration), end_s=_clamp(w.end_s + shift, duration))
        for w in speech.words
    )
    return Mastered(replace(speech, path=out, duration_s=duration, words=words), loudness)


def relevel(path: Path, loudness: Loudness, carried: Carrier, out: Path) -> Loudness:
    """Mastered sound at `path` (at `loudness`) written again to `out` for another encode: for a
    render at a lower bitrate than mastering was told (a fallback, a step down)."""
    before = loudness.integrated_lufs
    aimed = aimed_gain(levels(path), before, carried)
    return level([["-i", str(path)]], "[0:a:0]anull", before, out, carried, aimed)


def level(
    inputs: list[list[str]], shape: str, measured_lufs: float, out: Path, carried: Carrier = BEST,
    first_gain_db: float | None = None,
) -> Loudness:  # fmt: skip
    """Write the end of filter chain `shape` (over ffmpeg `inputs`), whose loudness is `measured_lufs`,
    to `out` at TARGET_LUFS (lifted by what the encode takes away) under the limiter's ceiling: first
    with `first_gain_db` (by default, the difference alone), each write measured, and made again with
    the difference added while it lands more than AIM_LU off."""
    ceiling = 10 ** (carried.ceiling_dbfs / 20)
    target = TARGET_LUFS + carried.lift_lu
    tried: list[tuple[float, float]] = [(0.0, measured_lufs)]  # (gain dB, loudness it gave)
    plain = target - measured_lufs if math.isfinite(measured_lufs) else 0.0
    gain = min(MAX_GAIN_DB, plain if first_gain_db is None else first_gain_db)
    for _ in range(MAX_PASSES):
        limiter = f"alimiter=limit={ceiling:.4f}:attack=5:release={RELEASE_MS:.0f}:level=false:latency=true"
        limit = f"volume={gain:.2f}dB,{limiter}"
        loudness = _run(inputs, f"{shape},{limit},asplit[out][meter];[meter]{METER},anullsink", out)
        miss = target - loudness.integrated_lufs
        if not math.isfinite(miss) or abs(miss) <= AIM_LU:
            break
        # The limiter takes back part of each added decibel: aim along the line through the last two tries.
        (g0, l0), (g1, l1) = tried[-1], (gain, loudness.integrated_lufs)
        slope = (l1 - l0) / (g1 - g0) if g1 != g0 else 1.0
        if slope < MIN_SLOPE and (len(tried) == 1 or l1 == l0):
            # The first point is measured before the pad and the limiter (or assumed), and two writes
            # may read the same to the meter's 0.1 LU: when the line through them is this flat (the
            # limiter took back most of the gain), aim with a typical one.
            slope = FIRST_SLOPE
        tried.append((g1, l1))
        gain = min(MAX_GAIN_DB, g1 + miss / min(1.0, max(MIN_SLOPE, slope)))
        if gain == g1:  # at the most it may add: another write would be the same
            break
    return loudness


def aimed_gain(found: Levels, measured_lufs: float, carried: Carrier) -> float:
    """The gain (dB) that should bring a voice with frame levels `found`, at `measured_lufs`, to
    the target through the limiter: the difference, plus what the limiter is expected to take back
    at that gain (which is more, the more is added: AIM_STEPS steps towards the gain that holds both)."""
    if not math.isfinite(measured_lufs):
        return 0.0
    plain = TARGET_LUFS + carried.lift_lu - measured_lufs
    gain = min(MAX_GAIN_DB, plain)
    for _ in range(AIM_STEPS):
        aimed = min(MAX_GAIN_DB, plain - limited_loss_db(found, gain, carried.ceiling_dbfs))
        if abs(aimed - gain) < 0.01:
            return aimed
        gain = aimed
    return gain


def limited_loss_db(found: Levels, gain_db: float, ceiling_dbfs: float) -> float:
    """About how much loudness (dB, at most 0) the limiter takes from a voice with frame levels
    `found` raised by `gain_db` under `ceiling_dbfs`. Each 10 ms frame whose peak would pass the
    ceiling is turned down to it, from half a frame before (the limiter's 5 ms look-ahead), and the
    gain comes back over the release; the loss is the frames' energy lost, over the frames a
    loudness meter's gates would keep (roughly: above -60 dBFS, within 20 dB of their mean).
    Measured against the limiter on the bench quotes at the three ceilings: 0 to 0.55 dB more than
    it takes from eSpeak NG, 0 to 0.2 more from Piper (1.2 on its shortest quote)."""
    energy = found.rms.astype(np.float64) ** 2
    loud = energy > (32768 * 10 ** (GATE_DBFS / 20)) ** 2
    if not loud.any():
        return 0.0
    kept = loud & (energy > energy[loud].mean() * 10 ** (-RELATIVE_GATE_DB / 10))
    ceiling = 32768 * 10 ** (ceiling_dbfs / 20)
    turned = np.minimum(1.0, ceiling / np.maximum(found.peak * 10 ** (gain_db / 20), 1e-9))
    turned = np.minimum(turned, np.sqrt(np.append(turned[1:], 1.0)))  # half the next frame's, ahead
    # The depth of the cut, 1 - gain, decays by `decay` a frame after each peak and is held at the
    # deepest: in logs, a running maximum of each frame's depth less its decay since.
    decay = -found.frame_s * 1000 / RELEASE_MS
    steps = np.arange(len(turned)) * decay
    depth = np.exp(np.maximum.accumulate(np.log(np.maximum(1.0 - turned, 1e-12)) - steps) + steps)
    kept_gain = np.maximum(0.0, 1.0 - depth[kept])
    return float(10 * math.log10(max(float((energy[kept] * kept_gain**2).sum()), 1e-30) / float(energy[kept].sum())))


def voiced_span(path: Path) -> tuple[float, float]:
    """Seconds from the start of a 16-bit WAV to its first and past its last frame louder than
    SILENCE_DBFS (with EDGE_S either side); the whole file when it is all silence."""
    return _voiced(levels(path))


def _voiced(found: Levels) -> tuple[float, float]:
    loud = np.flatnonzero(found.rms > 32768 * 10 ** (SILENCE_DBFS / 20))
    if loud.size == 0:
        return 0.0, found.length_s
    first, last = int(loud[0]), int(loud[-1])
    return max(0.0, first * found.frame_s - EDGE_S), min(found.length_s, (last + 1) * found.frame_s + EDGE_S)


def _loudness(inputs: list[list[str]], graph: str) -> float:
    """The integrated loudness at the end of `graph`, measured in one ffmpeg pass."""
    return parse_integrated(_pass(inputs, graph, ["-f", "null", "-"]))


def _run(inputs: list[list[str]], graph: str, out: Path) -> Loudness:
    """One ffmpeg pass over `graph`, written to `out` as 16-bit PCM while measured."""
    return parse_summary(_pass(inputs, graph, ["-map", "[out]", "-c:a", "pcm_s16le", str(out)]))


def _pass(inputs: list[list[str]], graph: str, target: list[str]) -> str:
    sources = [arg for given in inputs for arg in given]
    return ffmpeg.run([*sources, "-filter_complex", graph, *target], timeout_s=600, loglevel="info")


def _clamp(t_s: float, duration_s: float) -> float:
    return round(min(max(t_s, 0.0), duration_s), 3)
