"""Loudness as the platforms measure it (ITU-R BS.1770 / EBU R128), by ffmpeg's `ebur128` filter:
integrated loudness in LUFS and true peak in dBTP (4× oversampled)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from engine.errors import RenderFailed
from engine.render import ffmpeg

TARGET_LUFS = -14.0  # what YouTube, Spotify and most short-video platforms normalise to
TOLERANCE_LU = 1.0
MAX_TRUE_PEAK_DBTP = -1.0

# The meter as a filter: it passes the sound on, and prints its summary when the run ends.
# A mono file counts as the two identical channels it is played on (no effect on stereo).
METER = "ebur128=peak=true:framelog=quiet:dualmono=true"
# The integrated loudness alone: the true peak's 4x oversampling is 60% of a pass (measured, 32 s).
LOUDNESS_METER = "ebur128=framelog=quiet:dualmono=true"


@dataclass(frozen=True)
class Loudness:
    integrated_lufs: float  # -inf for silence
    true_peak_dbtp: float

    def meets_target(self) -> bool:
        return abs(self.integrated_lufs - TARGET_LUFS) <= TOLERANCE_LU and self.true_peak_dbtp <= MAX_TRUE_PEAK_DBTP


def measure(path: Path) -> Loudness:
    """The loudness of a media file's first audio stream; RenderFailed when it has none."""
    return parse_summary(_metered(path, METER))


def integrated(path: Path) -> float:
    """The integrated loudness (LUFS) of a media file's first audio stream, without its peak."""
    return parse_integrated(_metered(path, LOUDNESS_METER))


def _metered(path: Path, meter: str) -> str:
    """ffmpeg's log of `meter` run over the file's first audio stream."""
    return ffmpeg.run(["-i", str(path), "-filter_complex", f"[0:a:0]{meter}", "-f", "null", "-"], 600, "info")


_INTEGRATED = re.compile(r"I:\s+(-?(?:[\d.]+|inf))\s+LUFS")
# Each meter's summary, named by its place in the graph: "[Parsed_ebur128_3 @ 0x...] Summary: ...".
_EACH_INTEGRATED = re.compile(
    r"\[Parsed_ebur128_(\d+) @ [^\]]*\] Summary:\s+Integrated loudness:\s+" + _INTEGRATED.pattern
)
_PEAK = re.compile(r"Peak:\s+(-?(?:[\d.]+|inf))\s+dBFS")


def parse_summary(log: str) -> Loudness:
    """The figures of the last summary `ebur128` printed in an ffmpeg log."""
    at = log.rfind("Summary:")
    peak = _PEAK.search(log, at)
    if at < 0 or peak is None:
        raise RenderFailed("ffmpeg measured no loudness: the file has no audio to measure")
    return Loudness(parse_integrated(log), _number(peak[1]))


def parse_integrated(log: str) -> float:
    """The integrated loudness of the last summary in an ffmpeg log (LOUDNESS_METER's or METER's)."""
    at = log.rfind("Summary:")
    integrated = _INTEGRATED.search(log, at)
    if at < 0 or integrated is None:
        raise RenderFailed("ffmpeg measured no loudness: the file has no audio to measure")
    return _number(integrated[1])


def parse_each_integrated(log: str) -> list[float]:
    """The integrated loudness of every LOUDNESS_METER or METER in one ffmpeg run's log, in the order
    the meters stand in its filter graph (each meter's last summary, should one print two)."""
    found = {int(index): _number(lufs) for index, lufs in _EACH_INTEGRATED.findall(log)}
    return [found[index] for index in sorted(found)]


def _number(text: str) -> float:
    return -math.inf if text == "-inf" else float(text)
