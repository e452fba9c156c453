"""Probe a finished video and check it is what was asked for, and what the platforms' upload
specifications ask (DESIGN.md, "What a shared video must be")."""

from __future__ import annotations

from pathlib import Path

from engine.errors import RenderFailed
from engine.render.ffmpeg import Probe, probe
from engine.render.mp4box import Mp4Facts, inspect
from engine.render.spec import AUDIO_RATE

DURATION_TOLERANCE_S = 0.25
FRAME_RATES = (23.0, 60.0)  # the platforms take a constant rate in this range


def verify(
    path: Path, width: int, height: int, duration_s: float, fps: int | None = None, subtitles: bool = False
) -> Probe:
    """The probe of `path`; RenderFailed listing every way it differs from the request (with
    `subtitles`, a subtitle track among it)."""
    if not path.exists() or path.stat().st_size == 0:
        raise RenderFailed("the render wrote no video file")
    found = probe(path)
    problems = []
    if (found.video_codec, found.video_profile, found.pixel_format) != ("h264", "High", "yuv420p"):
        problems.append(
            f"video stream is {found.video_codec or 'missing'} {found.video_profile or ''} {found.pixel_format or ''},"
            " not H.264 High 4:2:0"
        )
    if (found.audio_codec, found.audio_profile) != ("aac", "LC"):
        problems.append(f"audio stream is {found.audio_codec or 'missing'} {found.audio_profile or ''}, not AAC-LC")
    elif (found.audio_rate, found.audio_channels) != (AUDIO_RATE, "stereo"):
        problems.append(f"audio is {found.audio_channels} at {found.audio_rate} Hz, not stereo at {AUDIO_RATE} Hz")
    if (found.width, found.height) != (width, height):
        problems.append(f"size is {found.width}x{found.height}, not {width}x{height}")
    if abs(found.duration_s - duration_s) > DURATION_TOLERANCE_S:
        problems.append(f"duration is {found.duration_s:.2f} s, not {duration_s:.2f} s")
    facts = inspect(path)
    problems += _unshareable(facts, fps)
    if subtitles and facts.track("sbtl") is None:
        problems.append("it has no subtitle track")
    if problems:
        raise RenderFailed("the output did not verify: " + "; ".join(problems))
    return found


def shareable(path: Path, fps: int | None = None) -> list[str]:
    """How the MP4's boxes miss the upload specifications (and the frame rate asked): none when it
    meets them. Closed GOPs need no check: no method makes B-frames (x264's settings, in the stream,
    say so, and the tests read them)."""
    return _unshareable(inspect(path), fps)


def _unshareable(facts: Mp4Facts, fps: int | None) -> list[str]:
    problems = []
    if not facts.moov_first:
        problems.append("the moov atom is not at the front")
    if facts.edit_lists:
        problems.append(f"it has {facts.edit_lists} edit list(s)")
    if not facts.constant_frame_rate:
        problems.append("its frame rate is not constant")
    elif fps is not None and abs(facts.frame_rate - fps) > 0.01:
        problems.append(f"its frame rate is {facts.frame_rate:.2f}, not {fps}")
    elif not FRAME_RATES[0] <= facts.frame_rate <= FRAME_RATES[1]:
        low, high = FRAME_RATES
        problems.append(f"its frame rate is {facts.frame_rate:.2f}, outside {low:.0f} to {high:.0f}")
    return problems
