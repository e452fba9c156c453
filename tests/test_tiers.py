import pytest

from engine.errors import InvalidInput
from engine.memory.tiers import choose_tier, tier
from engine.settings import Settings

DEFAULT = Settings.from_env({})


@pytest.mark.parametrize(
    "available, name",
    [(4096, "high"), (1025, "high"), (1024, "medium"), (512, "medium"), (511.9, "low"), (100, "low")],
)
def test_auto_choice_follows_the_seed_thresholds(available, name):
    choice = choose_tier(available, "auto", DEFAULT)
    assert choice.tier.name == name
    assert f"{available:.0f} MB available" in choice.reason


def test_seed_table():
    high, medium, low = (tier(n, DEFAULT) for n in ("high", "medium", "low"))
    assert (high.size(), high.video_kbps, high.audio_kbps) == ((1920, 1080), 800, 128)
    assert (medium.size(), medium.video_kbps, medium.audio_kbps) == ((1280, 720), 500, 64)
    assert (low.size(), low.video_kbps, low.audio_kbps) == ((854, 480), 300, 48)
    emergency = tier("emergency", DEFAULT)
    assert emergency.short_side == 480 and emergency.max_duration_s == 60
    assert emergency.video_kbps < low.video_kbps and emergency.audio_kbps < low.audio_kbps


@pytest.mark.parametrize("aspect, size", [("16:9", (1920, 1080)), ("9:16", (1080, 1920)), ("1:1", (1080, 1080))])
def test_p_is_the_short_side(aspect, size):
    assert tier("high", DEFAULT).size(aspect) == size


def test_forced_tier_wins_and_says_so():
    choice = choose_tier(100, "high", DEFAULT)
    assert choice.tier.name == "high" and choice.asked == "high"
    assert "forced" in choice.reason


def test_max_resolution_height_caps_every_tier_and_default_bitrate_sets_high():
    s = Settings.from_env({"MAX_RESOLUTION_HEIGHT": "720", "DEFAULT_BITRATE": "1200k"})
    assert tier("high", s).size() == (1280, 720)
    assert tier("high", s).video_kbps == 1200
    assert tier("medium", s).video_kbps == 500
    assert "capped at 720p" in choose_tier(4096, "auto", s).reason


def test_unknown_tier_and_aspect_are_refused():
    with pytest.raises(InvalidInput, match="ultra"):
        choose_tier(100, "ultra", DEFAULT)
    with pytest.raises(InvalidInput, match="4:3"):
        tier("low", DEFAULT).size("4:3")
