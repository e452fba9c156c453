"""The FFmpeg and emergency methods: encode the still card once, loop it by stream copy.

Memory is that of encoding one short segment, whatever the duration. Known traps
avoided: `-loop 1 ... -shortest` buffers frames (use a frame count and `-t`), and the
automatic thread count follows the host (always pass `-threads`).

Measured at 1080p (one 48-frame segment): x264 veryfast defaults peak at 233 MB; with
no B-frames, one reference and no lookahead (a still picture needs none of them), the
superfast preset and single threads, 124 MB and 0.36 s. The card is decoded once to a
raw frame: decoding the PNG for each of the 48 frames cost a further 0.27 s. ffmpeg's
native AAC with the fast coder encodes 32 s of speech in 0.15 s instead of 0.40 s.
"""

from __future__ import annotations

from pathlib import Path

from engine.render import ffmpeg
from engine.render.spec import H264_HIGH, MP4_DELIVERY, X264_STILL, RenderSpec, aac

METHODS = ("ffmpeg", "emergency")  # the methods this module renders: bare ffmpeg runs, no Python child
SEGMENT_S = 2
# Quality by CRF, with the tier's bitrate as a cap whose buffer holds a whole keyframe: a
# tight buffer starves the keyframe, and a still card shows that keyframe for two seconds.
CRF = 23
PRESET = "superfast"


def commands(spec: RenderSpec) -> tuple[list[list[str]], list[Path]]:
    """The ffmpeg runs that make the video, and the scratch files they leave for the caller to remove."""
    temp = Path(spec.temp_dir)
    states = spec.frame_bounds()
    runs: list[list[str]] = []
    scratch: list[Path] = []
    if len(states) == 1:
        # One still picture: encode a short segment once, loop it by stream copy.
        segment = temp / f"segment-{spec.method}.mp4"
        runs += _encode(spec, spec.card_path, spec.fps * SEGMENT_S, segment, scratch)
        video_in = ["-stream_loop", "-1", "-i", str(segment)]
    else:
        # Captions: one segment per caption state, of exactly its frames, joined by the concat
        # demuxer with stream copy. Encoding one still segment at a time keeps memory flat.
        segments = [temp / f"state-{index:03d}.mp4" for index in range(len(states))]
        for (card, first, last), segment in zip(states, segments, strict=True):
            runs += _encode(spec, card, last - first, segment, scratch)
        listing = temp / "states.txt"
        listing.write_text("".join(f"file '{path.name}'\n" for path in segments))  # our own names only
        scratch.append(listing)
        video_in = ["-f", "concat", "-safe", "0", "-i", str(listing)]
    runs.append(ffmpeg.command([
        *video_in, "-i", spec.audio_path,
        "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
        *aac(spec.audio_kbps, spec.audio_stereo),
        "-t", f"{spec.duration_s:.3f}", "-threads", str(spec.threads),
        *MP4_DELIVERY, spec.out_path,
    ]))  # fmt: skip
    return runs, scratch


def _encode(spec: RenderSpec, card: str, frames: int, out: Path, scratch: list[Path]) -> list[list[str]]:
    """Two runs: the card decoded once to a raw YUV frame, then `frames` frames of it encoded,
    starting on a keyframe. Quality by CRF, the tier's bitrate as the cap."""
    # One raw frame file for every state, overwritten by each (the runs are sequential): a 1080p
    # frame is 3 MB, and a word-captioned quote has hundreds of states.
    raw = Path(spec.temp_dir) / "frame.yuv"
    scratch += [out] if raw in scratch else [raw, out]
    size = f"{spec.width}x{spec.height}"
    return [
        ffmpeg.command([
            "-threads", "1", "-i", card, "-vf", f"scale={spec.width}:{spec.height}:flags=bicubic,format=yuv420p",
            "-frames:v", "1", "-f", "rawvideo", str(raw),
        ]),
        ffmpeg.command([
            "-threads", "1", "-filter_threads", "1",
            "-stream_loop", "-1", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", size, "-framerate", str(spec.fps),
            "-i", str(raw), "-frames:v", str(frames),
            "-c:v", "libx264", *H264_HIGH, "-preset", PRESET, "-tune", "stillimage", "-crf", str(CRF),
            "-maxrate", f"{spec.video_kbps}k", "-bufsize", f"{4 * spec.video_kbps}k",
            "-g", str(spec.fps * SEGMENT_S), "-x264-params", X264_STILL,
            "-threads", "1", "-an", str(out),
        ]),
    ]  # fmt: skip
