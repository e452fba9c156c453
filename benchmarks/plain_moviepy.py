"""The baseline every benchmark compares against: a plain MoviePy render with its defaults.

ImageClip + AudioFileClip, `write_videofile(fps=24, codec="libx264", audio_codec="aac")`,
as a typical MoviePy quote-video maker writes it. Never used to make a user's video.
"""

from __future__ import annotations

import sys
from pathlib import Path

from engine.render.spec import RenderSpec


def render(spec: RenderSpec) -> Path:
    from moviepy import AudioFileClip, ImageClip

    audio = AudioFileClip(spec.audio_path)
    clip = ImageClip(spec.card_path, duration=spec.duration_s).with_audio(audio)
    # MoviePy writes its temp audio beside the output by default; point it at the spec folder.
    clip.write_videofile(
        spec.out_path, fps=24, codec="libx264", audio_codec="aac", logger=None,
        temp_audiofile=str(Path(spec.temp_dir) / "plain-audio.m4a"),
    )  # fmt: skip
    clip.close()
    audio.close()
    return Path(spec.out_path)


if __name__ == "__main__":
    from engine.render.child import run_child

    sys.exit(run_child(sys.argv, render))
