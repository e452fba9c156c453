"""The MoviePy method, with memory-safe settings.

Explicit threads, a light x264 preset and short lookahead, RGB frames (no mask),
AAC audio, MoviePy's temp audio file inside the job's temp folder, every clip closed.
"""

from __future__ import annotations

from pathlib import Path

from engine.render.job import X264_STILL, RenderJob


def render(job: RenderJob) -> Path:
    from moviepy import AudioFileClip, ImageClip  # heavy: imported only in the render child

    audio = AudioFileClip(job.audio_path)
    clip = ImageClip(job.card_path, duration=job.duration_s).with_audio(audio)
    try:
        clip.write_videofile(
            job.out_path,
            fps=job.fps,
            codec="libx264",
            bitrate=f"{job.video_kbps}k",
            audio_codec="aac",
            audio_bitrate=f"{job.audio_kbps}k",
            preset="veryfast",
            threads=job.threads,
            temp_audiofile=str(Path(job.temp_dir) / "moviepy-audio.m4a"),
            ffmpeg_params=["-tune", "stillimage", "-x264-params", X264_STILL, "-movflags", "+faststart"],
            pixel_format="yuv420p",
            logger=None,
        )
    finally:
        clip.close()
        audio.close()
    return Path(job.out_path)
