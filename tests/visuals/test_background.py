"""Backgrounds: the named palette, and uploads checked by content with limits."""

import io

import numpy as np
import pytest
from PIL import Image

from engine.errors import InvalidInput
from engine.models import Request
from engine.pipeline import generate
from engine.visuals.background import PALETTE, Background, background, check_upload, render_background


def encoded(image: Image.Image, kind: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=kind)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["JPEG", "PNG", "WEBP"])
def test_uploads_of_each_kind_are_accepted(kind):
    check_upload(encoded(Image.new("RGB", (640, 480), (200, 120, 40)), kind))


def test_a_picture_is_cropped_to_fill_and_darkened():
    bright = Image.new("RGB", (400, 1200), (240, 240, 240))
    out = render_background(Background(image=encoded(bright, "PNG")), (854, 480))
    assert out.size == (854, 480)
    assert np.asarray(out).mean() < 0.5 * 240  # darkened so white text stays readable


def test_a_renamed_non_image_is_refused():
    with pytest.raises(InvalidInput, match="not a readable JPEG, PNG or WebP"):
        check_upload(b"%PDF-1.7 this is a document named photo.jpg" * 20)


def test_an_image_of_another_kind_is_refused_by_its_content():
    with pytest.raises(InvalidInput, match="GIF image; upload a JPEG, PNG or WebP"):
        check_upload(encoded(Image.new("RGB", (10, 10)), "GIF"))


def test_a_decompression_bomb_is_refused_before_decoding():
    # 20000 x 20000 pixels that compress to a few hundred kilobytes.
    bomb = encoded(Image.new("1", (20000, 20000)), "PNG")
    assert len(bomb) < 1_000_000
    with pytest.raises(InvalidInput, match=r"20000×20000 pixels|too large to decode"):
        check_upload(bomb)


def test_a_truncated_image_is_refused():
    whole = encoded(Image.effect_noise((400, 400), 50).convert("RGB"), "JPEG")
    with pytest.raises(InvalidInput, match="not a readable"):
        check_upload(whole[: len(whole) // 3])


def test_an_oversized_upload_is_refused():
    with pytest.raises(InvalidInput, match="under 10 MB"):
        check_upload(b"\0" * (10 * 1024 * 1024 + 1))


def test_palette_names():
    assert set(PALETTE) >= {"midnight", "ocean", "forest", "ember", "graphite", "black"}
    with pytest.raises(InvalidInput, match="background 'neon' is not offered"):
        background("neon")


def test_a_generation_with_an_uploaded_background(settings):
    picture = encoded(Image.new("RGB", (1600, 900), (30, 160, 90)), "WEBP")
    result = generate(Request("Stay hungry.", tier="low", background_image=picture), settings)
    assert result.status == "ok"


def test_a_bad_upload_refuses_the_generation(settings):
    with pytest.raises(InvalidInput, match="not a readable"):
        generate(Request("Stay hungry.", background_image=b"GIF89a-not-really"), settings)
