"""Speech mastered for streaming, whichever engine spoke it: leading and trailing silence trimmed
to an even pad, −14 LUFS integrated with true peak under −1 dBTP; mono at the voice's own rate (the
AAC encoder makes it 48 kHz stereo: the file is a quarter of its 48 kHz stereo size, which matters
to a disk that is nearly full, and the true-peak meter oversamples either way).

ffmpeg's `ebur128` meter measures (a BS.1770 implementation we do not write ourselves); a gain and
a look-ahead limiter make the level. The limiter shaves the peaks the gain pushes past the ceiling
(eSpeak NG speaks at about −21 LUFS with peaks near full scale, so it has to), which lowers the
loudness, and the more gain is added, the more it lowers. So one pass first measures the loudness through the
limiter at each of PROBE_GAINS_DB (a meter each, nothing written), and the write is aimed along the
line between them; each write is measured as it is made, and one that lands more than AIM_LU from
the target is made again. Measured on the bench quotes (eSpeak NG in four languages and at three
speeds, Piper): one write each time, 0.17 s for 32 s of speech, where aiming by the loudness before
the limiter took two or three writes and 0.26 s. ffmpeg's `loudnorm` was tried first: it took
1.7 s for 32 s (it works at 192 kHz) and, in its linear mode, left the short quote at −17.4 LUFS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from engine.audio.levels import levels
from engine.audio.loudness import LOUDNESS_METER, METER, TARGET_LUFS, Loudness, parse_each_integrated, parse_summary
from engine.errors import RenderFailed
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


# By the least AAC bitrate (kbit/s, both channels coded) each applies to. The encoder's noise and band limit
# (about 16 kHz at 128k, 9.5 kHz at 64k, 5.8 kHz at 48k, 3.2 kHz at 32k) raise the true peak over the
# limiter's ceiling, the more the lower the bitrate, and erratically: measured on the bench quotes,
# both offline voices, alone and under every bed, the delivered true peak was at most -2.2 dBTP at
# 128k and -1.7 at 64k over a -2.5 dBFS ceiling; at 48k -1.2 over -2.5 (-0.7 for one run's eSpeak
# NG, which varies from run to run), -1.4 over -4.0 and -3.0 over -4.5; at 32k +1.2 over -2.5, -0.1
# over -4.5 and -3.1 over -6.5, where the encode also takes 0.6 to 1.0 LU away (its band ends at
# 3.2 kHz; measured again on the speech alone, 0.8 to 1.0, and 1.6 for the 3 s short quote. This
# table's 32k row now serves only the emergency render of a mix with music).
CARRIERS = ((64, Carrier(-2.5)), (48, Carrier(-4.5)), (0, Carrier(-6.5, lift_lu=0.6)))
# The speech coded as one channel and made stereo (engine.render.aac_stereo), at the bitrate that keeps
# it within the two-channel encode's (engine.render.spec.one_channel_kbps): measured on the bench
# quotes, both voices, its true peak was at most 0.7 dB over the two-channel encode's (at 32k -3.1 to
# -5.0 dBTP over -6.5, against -3.8 to -5.1; at 48k -2.5 to -4.3 over -4.5), far under -1, and at 32k
# the encode took 0.2 to 0.4 LU away. The same ceilings, less lift.
ONE_CHANNEL = tuple((least, replace(found, lift_lu=min(found.lift_lu, 0.3))) for least, found in CARRIERS)
BEST = CARRIERS[0][1]
AIM_LU = 0.5  # half the tolerance: the AAC encoding moves it by about 0.1
MAX_PASSES = 3
MIN_SLOPE = 0.25  # of loudness gained per decibel added, aimed with: less would overshoot wildly
# What a limited voice keeps of an added decibel: 0.4 to 0.6 for Piper and eSpeak NG (measured).
FIRST_SLOPE = 0.5
MAX_GAIN_DB = 30.0
Point = tuple[float, float]  # (gain dB, the integrated loudness it gave)
# Gains measured through the limiter before the first write, the write then aimed between them
# (under BEST's ceiling; under a lower one, higher by as much).
PROBE_GAINS_DB = (2.0, 6.0)


@dataclass(frozen=True)
class Mastered:
    speech: Speech  # the mastered WAV, its duration and the word timings moved with the trim
    loudness: Loudness  # as measured on the mastered WAV


def carrier(audio_kbps: int, one_channel: bool = False) -> Carrier:
    """What mastering leaves for an AAC encode at `audio_kbps`, of both channels or (`one_channel`)
    of the mono speech made stereo."""
    return next(found for least, found in (ONE_CHANNEL if one_channel else CARRIERS) if audio_kbps >= least)


def master(speech: Speech, out: Path, carried: Carrier = BEST) -> Mastered:
    """Write `speech`, mastered for an encode that leaves `carried`, to `out` (a WAV)."""
    start_s, end_s = voiced_span(speech.path)
    inputs = [["-i", str(speech.path)]]
    # The meter reads the mono signal as the two identical channels the encoder makes of it.
    shape = (
        f"[0:a:0]atrim=start={start_s:.4f}:end={end_s:.4f},asetpts=PTS-STARTPTS,aformat=channel_layouts=mono,"
        f"adelay={PAD_S * 1000:.0f},apad=pad_dur={PAD_S}"
    )
    loudness = level(inputs, shape, limited_loudness(inputs, shape, carried), out, carried)
    shift = PAD_S - start_s
    duration = wav_duration_s(out)
    words = tuple(
        replace(w, start_s=_clamp(w.start_s + shift, duration), end_s=_clamp(w.end_s + shift, duration))
        for w in speech.words
    )
    return Mastered(replace(speech, path=out, duration_s=duration, words=words), loudness)


def limited_loudness(inputs: list[list[str]], shape: str, carried: Carrier) -> list[Point]:
    """The loudness at the end of filter chain `shape` through the limiter at each of PROBE_GAINS_DB,
    measured in one ffmpeg pass (nothing written)."""
    # A lower ceiling (or a lifted target) needs as much more gain for the same loudness, about.
    gains = [gain + BEST.ceiling_dbfs - carried.ceiling_dbfs + carried.lift_lu for gain in PROBE_GAINS_DB]
    branches = "".join(f"[p{i}]" for i in range(len(gains)))
    graph = f"{shape},asplit={len(gains)}{branches}"
    for i, gain in enumerate(gains):
        end = "[out]" if i == len(gains) - 1 else ",anullsink"
        graph += f";[p{i}]{_limit(gain, carried)},{LOUDNESS_METER}{end}"
    found = parse_each_integrated(_pass(inputs, graph, ["-map", "[out]", "-f", "null", "-"]))
    if len(found) != len(gains):
        raise RenderFailed(
            f"ffmpeg's log held {len(found)} loudness summaries for {len(gains)} meters: its ebur128 "
            "output is not in the form this version reads; use the ffmpeg that imageio-ffmpeg installs "
            "(unset IMAGEIO_FFMPEG_EXE)"
        )
    return list(zip(gains, found, strict=True))


def relevel(path: Path, loudness: Loudness, carried: Carrier, out: Path) -> Loudness:
    """Mastered sound at `path` (at `loudness`) written again to `out` for another encode: for a
    render at a lower bitrate than mastering was told (a fallback, a step down)."""
    return level([["-i", str(path)]], "[0:a:0]anull", [(0.0, loudness.integrated_lufs)], out, carried, guessed=True)


def level(
    inputs: list[list[str]],
    shape: str,
    known: Sequence[Point],
    out: Path,
    carried: Carrier = BEST,
    guessed: bool = False,
) -> Loudness:
    """Write the end of filter chain `shape` (over ffmpeg `inputs`) to `out` at TARGET_LUFS (lifted by
    what the encode takes away) under the limiter's ceiling, aimed by `known`: loudness measured
    through this limiter beforehand, or (`guessed`) one point measured without it or assumed. Each
    write is measured, and made again while it lands more than AIM_LU off."""
    target = TARGET_LUFS + carried.lift_lu
    points = [point for point in known if math.isfinite(point[1])]
    gain = min(MAX_GAIN_DB, aim(points, target)) if points else 0.0
    for _ in range(MAX_PASSES):
        loudness = _run(inputs, f"{shape},{_limit(gain, carried)},asplit[out][meter];[meter]{METER},anullsink", out)
        miss = target - loudness.integrated_lufs
        if not math.isfinite(miss) or abs(miss) <= AIM_LU:
            break
        first_of_a_guess = guessed and len(points) == 1
        points.append((gain, loudness.integrated_lufs))
        again = min(MAX_GAIN_DB, aim(points, target))
        if first_of_a_guess and _slope(points[0], points[1]) < MIN_SLOPE:
            # A line this flat through a point not measured through this limiter says little
            # (the limiter took back most of the gain): aim with a typical slope.
            again = min(MAX_GAIN_DB, gain + miss / FIRST_SLOPE)
        if again == gain:  # at the most it may add: another write would be the same
            break
        gain = again
    return loudness


def aim(points: Sequence[Point], target: float) -> float:
    """The gain (dB) that reaches `target` by `points` (at least one): along the line through the two
    either side of it, or the last two short of it. Under the quietest point (or by one point alone)
    a decibel takes a decibel: the less gain, the less the limiter takes back, so that aim may land
    loud, never quiet. Unbounded: the caller caps it."""
    ordered = sorted(points)
    past = next((i for i, (_, lufs) in enumerate(ordered) if lufs >= target), len(ordered))
    if past == 0 or len(ordered) == 1:
        return ordered[0][0] + target - ordered[0][1]
    upper = min(past, len(ordered) - 1)
    below, above = ordered[upper - 1], ordered[upper]
    slope = min(1.0, max(MIN_SLOPE, _slope(below, above)))
    gain, lufs = above if above[1] < target else below  # from the nearer when past both
    return gain + (target - lufs) / slope


def _slope(a: Point, b: Point) -> float:
    """Loudness gained per decibel added, between two points (1 at the same gain)."""
    return (b[1] - a[1]) / (b[0] - a[0]) if b[0] != a[0] else 1.0


def voiced_span(path: Path) -> tuple[float, float]:
    """Seconds from the start of a 16-bit WAV to its first and past its last frame louder than
    SILENCE_DBFS (with EDGE_S either side); the whole file when it is all silence."""
    found = levels(path)
    loud = np.flatnonzero(found.rms > 32768 * 10 ** (SILENCE_DBFS / 20))
    if loud.size == 0:
        return 0.0, found.length_s
    first, last = int(loud[0]), int(loud[-1])
    return max(0.0, first * found.frame_s - EDGE_S), min(found.length_s, (last + 1) * found.frame_s + EDGE_S)


def _limit(gain_db: float, carried: Carrier) -> str:
    """The gain and the look-ahead limiter at `carried`'s ceiling (alimiter takes it linear) as filters."""
    ceiling = 10 ** (carried.ceiling_dbfs / 20)
    return f"volume={gain_db:.2f}dB,alimiter=limit={ceiling:.4f}:attack=5:release=50:level=false:latency=true"


def _run(inputs: list[list[str]], graph: str, out: Path) -> Loudness:
    """One ffmpeg pass over `graph`, written to `out` as 16-bit PCM while measured."""
    return parse_summary(_pass(inputs, graph, ["-map", "[out]", "-c:a", "pcm_s16le", str(out)]))


def _pass(inputs: list[list[str]], graph: str, target: list[str]) -> str:
    sources = [arg for given in inputs for arg in given]
    return ffmpeg.run([*sources, "-filter_complex", graph, *target], timeout_s=600, loglevel="info")


def _clamp(t_s: float, duration_s: float) -> float:
    return round(min(max(t_s, 0.0), duration_s), 3)
