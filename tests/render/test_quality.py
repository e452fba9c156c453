"""Picture quality against the card, measured by ffmpeg on a real encode: the frame shown is the card's."""

import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from engine.render.ffmpeg import ffmpeg_exe
from engine.render.quality import measure


def card(path: Path, text: str) -> Path:
    image = Image.new("RGB", (640, 360), (20, 40, 70))
    ImageDraw.Draw(image).text((40, 150), text, fill=(240, 240, 240), font_size=48)
    image.save(path)
    return path


@pytest.mark.parametrize("sound", [True, False], ids=["with sound", "silent film"])
def test_a_frame_is_measured_against_its_own_card_not_another(tmp_path, sound):
    shown, other = card(tmp_path / "shown.png", "Stay hungry."), card(tmp_path / "other.png", "Stay foolish, go.")
    video = tmp_path / "video.mp4"
    audio = ["-f", "lavfi", "-i", "sine=440:d=3", "-c:a", "aac", "-shortest"] if sound else []
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-loop", "1", "-i", str(shown), *audio,
         "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(video)],
        check=True, timeout=60,
    )  # fmt: skip
    own, another = measure(video, shown, 1.0), measure(video, other, 1.0)
    assert own is not None and another is not None
    assert own.ssim > 0.95 and own.psnr_db > 35, own
    assert another.ssim < own.ssim and another.psnr_db < own.psnr_db - 10, another  # 0.974, 25 dB: 0.999, 55


def test_a_bmp_card_gives_the_figures_its_png_gives(tmp_path):
    """The pipeline's reference for a caption state is a BMP (quicker to write): the same pixels, so
    the same figures, though ffmpeg reads it as BGR."""
    png = card(tmp_path / "card.png", "Stay hungry.")
    bmp = tmp_path / "card.bmp"
    Image.open(png).save(bmp, format="BMP")
    video = tmp_path / "video.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-loop", "1", "-i", str(png), "-t", "2", "-c:v", "libx264", "-crf", "35",
         "-pix_fmt", "yuv420p", str(video)],
        check=True, timeout=60,
    )  # fmt: skip
    from_png, from_bmp = measure(video, png, 1.0), measure(video, bmp, 1.0)
    assert from_png is not None and from_png.psnr_db < 60  # a lossy encode: figures that can differ
    assert from_bmp == from_png


def test_a_file_that_is_not_a_video_gives_no_figures_and_no_error(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    assert measure(broken, card(tmp_path / "card.png", "x"), 1.0) is None
