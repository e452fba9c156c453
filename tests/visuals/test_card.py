import pytest
from PIL import Image, ImageStat

from engine.errors import InvalidInput
from engine.visuals.card import check_coverage, draw_card, fit
from engine.visuals.text import QuoteText
from tests.helpers import QUOTES


@pytest.mark.parametrize("size", [(1920, 1080), (1280, 720), (854, 480)])
def test_card_is_rgb_at_the_tier_size(tmp_path, size):
    path = draw_card(QUOTES["medium"], "Steve Jobs", size, tmp_path / "card.png")
    with Image.open(path) as image:
        assert image.size == size
        assert image.mode == "RGB"


def test_long_quote_fits_inside_the_margins(tmp_path):
    layout = fit(QuoteText.of(QUOTES["long"], "Theodore Roosevelt"), 1536, 864)
    assert len(layout.lines) > 5 and layout.font_px >= 24
    path = draw_card(QUOTES["long"], "Theodore Roosevelt", (1920, 1080), tmp_path / "card.png")
    with Image.open(path) as image:
        # the outer 5% band holds only the background: nothing drawn spills into it
        band = image.crop((0, 0, 96, 1080)).convert("L")
        assert ImageStat.Stat(band).extrema[0][1] < 100


def test_short_quote_gets_bigger_text_than_a_long_one():
    short, long = QuoteText.of(QUOTES["short"]), QuoteText.of(QUOTES["long"])
    assert fit(short, 1536, 864).font_px > 2 * fit(long, 1536, 864).font_px


def test_text_is_drawn_with_readable_contrast(tmp_path):
    path = draw_card("Stay hungry.", "", (854, 480), tmp_path / "card.png")
    with Image.open(path) as image:
        grey = image.convert("L")
        lo, hi = ImageStat.Stat(grey).extrema[0]
    assert hi > 230 and lo < 50


def test_a_word_wider_than_the_card_is_broken_not_clipped():
    layout = fit(QuoteText.of("x" * 400), 400, 300)
    assert len(layout.lines) > 1


def test_missing_glyph_is_named(tmp_path):
    with pytest.raises(InvalidInput, match=r"U\+13000"):
        check_coverage("\U00013000 hieroglyph")
    with pytest.raises(InvalidInput, match="cannot draw"):
        draw_card("Hello 🦜", "", (854, 480), tmp_path / "card.png")
    assert not (tmp_path / "card.png").exists()


def test_mixed_scripts_no_font_draws_are_refused_by_name():
    with pytest.raises(InvalidInput, match="mixing Arabic and CJK text on one card is not supported"):
        check_coverage("مرحبا 世界")
    assert check_coverage("Hello مرحبا").font.name == "DejaVuSans.ttf"  # Raqm orders the mixed line


def test_accents_greek_cyrillic_cjk_arabic_are_covered():
    check_coverage("Déjà vu — naïve café, Ελληνικά, Русский")
    assert check_coverage("生きるべきか、死ぬべきか。").font.name == "DroidSansFallbackFull.ttf"
    script = check_coverage("الحياة قصيرة")
    assert script.rtl and script.font.name == "NotoSansArabic-Regular.ttf"


def test_the_characters_checked_without_a_font_read_are_drawn_by_the_first_font():
    from engine.visuals import typeset

    assert typeset.codepoints(typeset.FONT_CHAIN[0]) >= typeset._FIRST_FONT_DRAWS
    latin = "Déjà vu — “naïve” café… ¿Qué? «Ça» 50% & ½"
    assert {ord(ch) for ch in latin if not ch.isspace()} <= typeset._FIRST_FONT_DRAWS
    assert check_coverage(latin) == typeset.Script(typeset.FONT_CHAIN[0], rtl=False)
