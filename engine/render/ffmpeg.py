"""The ffmpeg binary that imageio-ffmpeg ships: running it, and probing what it made.

imageio-ffmpeg ships ffmpeg without ffprobe, so probing reads `ffmpeg -i`'s stream lines.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from engine.errors import RenderFailed
from engine.render.lifetime import die_with_parent


def ffmpeg_exe() -> str:
    """The ffmpeg that imageio-ffmpeg ships (or IMAGEIO_FFMPEG_EXE names); RenderFailed if absent."""
    try:
        import imageio_ffmpeg

        path = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        raise RenderFailed(f"ffmpeg is not available ({exc}); reinstall the requirements") from None
    if not os.access(path, os.X_OK):
        raise RenderFailed(f"ffmpeg is missing at {path}; reinstall the requirements (imageio-ffmpeg)")
    return path


def command(args: list[str], loglevel: str = "error") -> list[str]:
    """The full argv of an ffmpeg run: quiet but for errors, never reading stdin, overwriting."""
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", loglevel, "-y", *args]


def run(args: list[str], timeout_s: float = 600.0, loglevel: str = "error") -> str:
    """Run ffmpeg with `args` (no shell); its log (what a measuring filter reports at "info"), or
    RenderFailed with its last error line on failure."""
    cmd = command(args, loglevel)
    try:
        done = subprocess.run(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout_s, preexec_fn=die_with_parent()
        )
    except subprocess.TimeoutExpired:
        raise RenderFailed(f"ffmpeg took longer than {timeout_s:.0f} s and was stopped") from None
    except OSError as exc:
        raise RenderFailed(f"ffmpeg could not start ({exc.strerror}); reinstall the requirements") from None
    if done.returncode == -signal.SIGXFSZ:  # over the file size limit: killed before it could say so
        raise RenderFailed(disk_full("SIGXFSZ"))
    if done.returncode != 0:
        raise RenderFailed(f"ffmpeg failed: {explain(done.stderr) or f'exit {done.returncode}'}")
    return done.stderr.decode(errors="replace")


DISK_FULL = ("No space left on device", "File too large", "Disk quota exceeded")


def disk_full(why: str) -> str:
    """The one sentence for a write that found no room, whoever hit it (ffmpeg, a signal, our own write)."""
    return f"the disk is full or the file size limit was reached ({why}); free space in DATA_DIR"


def explain(stderr: bytes) -> str:
    """ffmpeg's reason, with a plain sentence in front when the disk filled up."""
    words = last_words(stderr)
    if any(sign in words for sign in DISK_FULL):
        return disk_full(words)
    return words


def last_words(stderr: bytes) -> str:
    """ffmpeg's last two error lines without their `[component @ 0x…]` prefixes: the cause and its summary."""
    lines = [re.sub(r"^\[[^\]]*\] ", "", line).strip() for line in stderr.decode(errors="replace").splitlines()]
    return " ".join(line.rstrip(".") + "." for line in [x for x in lines if x][-2:])


@dataclass(frozen=True)
class Probe:
    duration_s: float
    video_codec: str | None
    width: int
    height: int
    audio_codec: str | None
    size_bytes: int
    audio_profile: str | None = None  # "LC" for AAC-LC
    audio_rate: int = 0  # Hz
    audio_channels: str | None = None  # "mono", "stereo", ...
    video_profile: str | None = None  # "High" for H.264 High
    pixel_format: str | None = None  # "yuv420p" for 4:2:0


_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\S+: Video: (\w+).*?, (\d{2,5})x(\d{2,5})")
_VIDEO_PROFILE = re.compile(r"Stream #\S+: Video: \w+ \(([\w ]+)\)")
_PIXELS = re.compile(r"Stream #\S+: Video: [^\n]*?, (yuv\w+|yuvj\w+|rgb\w+|gray\w*)[(,]")
_AUDIO = re.compile(r"Stream #\S+: Audio: (\w+)(?: \(([^)]*)\))?[^,]*, (\d+) Hz, ([\w.()]+)")


def probe(path: Path) -> Probe:
    """Streams, duration and size of a media file; RenderFailed when it is not one."""
    try:
        done = subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
            preexec_fn=die_with_parent(),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RenderFailed(f"could not probe {path.name}: {exc}") from None
    return parse_probe(done.stderr.decode(errors="replace"), path.stat().st_size if path.exists() else 0)


def parse_probe(text: str, size_bytes: int) -> Probe:
    duration = _DURATION.search(text)
    if duration is None:
        raise RenderFailed("the file is not a readable media file")
    hours, minutes, seconds = duration.groups()
    video = _VIDEO.search(text)
    audio = _AUDIO.search(text)
    return Probe(
        duration_s=int(hours) * 3600 + int(minutes) * 60 + float(seconds),
        video_codec=video[1] if video else None,
        width=int(video[2]) if video else 0,
        height=int(video[3]) if video else 0,
        audio_codec=audio[1] if audio else None,
        size_bytes=size_bytes,
        audio_profile=audio[2] if audio else None,
        audio_rate=int(audio[3]) if audio else 0,
        audio_channels=audio[4] if audio else None,
        video_profile=profile[1] if (profile := _VIDEO_PROFILE.search(text)) else None,
        pixel_format=pixels[1] if (pixels := _PIXELS.search(text)) else None,
    )
