"""Probe a finished video and check it is what was asked for."""

from __future__ import annotations

from pathlib import Path

from engine.errors import RenderFailed
from engine.render.ffmpeg import Probe, probe
from engine.render.spec import AUDIO_RATE

DURATION_TOLERANCE_S = 0.25


def verify(path: Path, width: int, height: int, duration_s: float) -> Probe:
    """The probe of `path`; RenderFailed listing every way it differs from the request."""
    if not path.exists() or path.stat().st_size == 0:
        raise RenderFailed("the render wrote no video file")
    found = probe(path)
    problems = []
    if found.video_codec != "h264":
        problems.append(f"video stream is {found.video_codec or 'missing'}, not h264")
    if (found.audio_codec, found.audio_profile) != ("aac", "LC"):
        problems.append(f"audio stream is {found.audio_codec or 'missing'} {found.audio_profile or ''}, not AAC-LC")
    elif found.audio_rate != AUDIO_RATE:
        problems.append(f"audio is at {found.audio_rate} Hz, not {AUDIO_RATE} Hz")
    if (found.width, found.height) != (width, height):
        problems.append(f"size is {found.width}x{found.height}, not {width}x{height}")
    if abs(found.duration_s - duration_s) > DURATION_TOLERANCE_S:
        problems.append(f"duration is {found.duration_s:.2f} s, not {duration_s:.2f} s")
    if problems:
        raise RenderFailed("the output did not verify: " + "; ".join(problems))
    return found
