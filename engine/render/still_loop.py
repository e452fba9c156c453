"""The FFmpeg and emergency methods: encode the still card once, loop it by stream copy.

Memory is that of encoding one short segment, whatever the duration. Known traps
avoided: `-loop 1 ... -shortest` buffers frames (use a frame count and `-t`), and the
automatic thread count follows the host (always pass `-threads`).

Measured at 1080p (one 48-frame segment): x264 veryfast defaults peak at 233 MB; with
no B-frames, one reference and no lookahead (a still picture needs none of them) and
single-threaded decode, filter and encode, 126 MB. The segment is 48 frames, so one
thread costs well under a second.
"""

from __future__ import annotations

from pathlib import Path

from engine import ffmpeg
from engine.render.job import X264_STILL, RenderJob

SEGMENT_S = 2


def render(job: RenderJob) -> Path:
    temp = Path(job.temp_dir)
    states = job.frame_bounds()
    if len(states) == 1:
        # One still picture: encode a short segment once, loop it by stream copy.
        segment = temp / f"segment-{job.method}.mp4"
        _encode(job, job.card_path, job.fps * SEGMENT_S, segment)
        video_in = ["-stream_loop", "-1", "-i", str(segment)]
        made = [segment]
    else:
        # Captions: one segment per caption state, of exactly its frames, joined by the concat
        # demuxer with stream copy. Encoding one still segment at a time keeps memory flat.
        made = []
        for index, (card, first, last) in enumerate(states):
            made.append(temp / f"state-{index:03d}.mp4")
            _encode(job, card, last - first, made[-1])
        listing = temp / "states.txt"
        listing.write_text("".join(f"file '{path.name}'\n" for path in made))  # our own names only
        made.append(listing)
        video_in = ["-f", "concat", "-safe", "0", "-i", str(listing)]
    ffmpeg.run([
        *video_in, "-i", job.audio_path,
        "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
        "-c:a", "aac", "-b:a", f"{job.audio_kbps}k",
        "-t", f"{job.duration_s:.3f}", "-threads", str(job.threads),
        "-movflags", "+faststart", job.out_path,
    ])  # fmt: skip
    for path in made:
        path.unlink(missing_ok=True)
    return Path(job.out_path)


def _encode(job: RenderJob, card: str, frames: int, out: Path) -> None:
    """`frames` frames of one still card, starting on a keyframe."""
    preset = "ultrafast" if job.method == "emergency" else "veryfast"
    ffmpeg.run([
        "-threads", "1", "-filter_threads", "1",
        "-loop", "1", "-framerate", str(job.fps), "-i", card,
        "-frames:v", str(frames),
        "-vf", f"scale={job.width}:{job.height}:flags=bicubic,format=yuv420p",
        "-c:v", "libx264", "-preset", preset, "-tune", "stillimage",
        "-b:v", f"{job.video_kbps}k", "-maxrate", f"{job.video_kbps}k", "-bufsize", f"{2 * job.video_kbps}k",
        "-g", str(job.fps * SEGMENT_S), "-x264-params", X264_STILL,
        "-threads", "1", "-an", str(out),
    ])  # fmt: skip
