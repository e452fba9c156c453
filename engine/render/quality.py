"""Picture quality: SSIM and PSNR of an encoded video's frame against the card it was made from."""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from engine.render.ffmpeg import ffmpeg_exe, last_words
from engine.render.lifetime import die_with_parent

log = logging.getLogger(__name__)

_SSIM = re.compile(r"SSIM .*All:([0-9.]+)")
_PSNR = re.compile(r"PSNR .*average:([0-9.]+|inf)")


@dataclass(frozen=True)
class Quality:
    ssim: float  # 1.0 is identical
    psnr_db: float  # higher is closer; 99 stands for identical


def measure(video: Path, card: Path, at_s: float, picture: int | None = None) -> Quality | None:
    """Compare the frame at `at_s` with `card` (scaled to the video's size); None if ffmpeg cannot.
    With `picture`, `video` is a raw H.264 stream, and its picture of that number is compared: the
    FFmpeg methods' pictures, measured while they are muxed (the video holds them unchanged)."""
    if picture is None:
        source, pick = ["-ss", f"{at_s:.3f}", "-i", str(video)], ""
    else:
        # Unprobed: ffmpeg would decode pictures for seconds of the stream before the first it is
        # asked for (0.1 s of the measure's 0.33 for the long quote's phrase captions, measured).
        source = ["-probesize", "32", "-analyzeduration", "0", "-f", "h264", "-i", str(video)]
        pick = f"select=eq(n\\,{picture}),"
    graph = (
        f"[0:v]{pick}format=yuv420p,split[v1][v2];[1:v][0:v]scale2ref[c][ref];[ref]nullsink;"
        "[c]format=yuv420p,split[c1][c2];[v1][c1]ssim;[v2][c2]psnr"
    )
    try:
        done = subprocess.run(
            # One thread each: a single frame gains nothing from frame threads, which hold frames of memory.
            # No sound: ffmpeg would decode the video's AAC to the end beside the picture (16 MB more at
            # 1080p for the long quote, 48 against 32; measured), as the file is verified beside it.
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-threads", "1", *source, "-i", str(card),
             "-filter_threads", "1", "-lavfi", graph, "-frames:v", "1", "-an", "-sn", "-dn", "-f", "null", "-"],
            capture_output=True, timeout=60, preexec_fn=die_with_parent(),
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("picture quality not measured: %s", exc)
        return None
    text = done.stderr.decode(errors="replace")
    ssim, psnr = _SSIM.search(text), _PSNR.search(text)
    if not ssim or not psnr:
        log.warning(
            "picture quality not measured: ffmpeg said %s", last_words(done.stderr) or f"exit {done.returncode}"
        )
        return None
    return Quality(round(float(ssim[1]), 4), 99.0 if psnr[1] == "inf" else round(float(psnr[1]), 2))
