"""Tiers and the plan: the seed's table and thresholds, and the measured policy that picks the
best tier whose predicted peak fits the render budget."""

import pytest

from engine.choices import ASPECTS, TIERS
from engine.errors import InvalidInput, NotEnoughMemory
from engine.memory.costs import PRIOR_FILE, Cost, CostKey, CostModel, band, load_prior
from engine.memory.plan import check_floor, floor, make_plan, method_chain
from engine.memory.tiers import seed_tier_name, tier
from engine.models import Request
from engine.settings import Settings

DEFAULT = Settings.from_env({})
SEED = Settings.from_env({"TIER_POLICY": "seed"})
# A small model: FFmpeg at 1080p, 720p and 480p, and the emergency render.
MODEL = CostModel(
    {
        CostKey("ffmpeg", "high"): Cost(120.0, 0.05, 3, "prior"),
        CostKey("ffmpeg", "medium"): Cost(70.0, 0.04, 3, "prior"),
        CostKey("ffmpeg", "low"): Cost(47.0, 0.03, 3, "prior"),
        CostKey("emergency", "emergency"): Cost(49.0, 0.02, 3, "prior"),
    }
)


def plan(capacity: float, available: float = 400.0, settings: Settings = DEFAULT, **request):
    return make_plan(Request("Stay hungry.", **request), settings, MODEL, capacity, available, 5.0)


@pytest.mark.parametrize(
    "available, name",
    [(4096, "high"), (1025, "high"), (1024, "medium"), (512, "medium"), (511.9, "low"), (100, "low")],
)
def test_the_seed_policy_follows_the_seed_thresholds_exactly(available, name):
    chosen = plan(capacity=10_000, available=available, settings=SEED)
    assert seed_tier_name(available) == name
    assert chosen.tier.name == name and chosen.policy == "seed"
    assert f"{available:.0f} MB available" in chosen.reason
    assert len(chosen.options) == 1  # the seed never steps down


def test_the_measured_policy_picks_the_best_tier_that_fits_from_the_first_request():
    roomy = plan(capacity=300, available=340)
    assert roomy.tier.name == "high" and roomy.policy == "measured"
    assert [o.tier.name for o in roomy.options] == ["high", "medium", "low"]  # lower ones to step down to
    assert "ffmpeg at high is predicted to peak at 120 MB" in roomy.reason and "300 MB render budget" in roomy.reason
    assert roomy.seed_tier == "low"  # the seed would have given 480p here
    assert roomy.options[0].need_mb == 138.0  # the p95 plus a 15% margin
    tight = plan(capacity=100)
    assert tight.tier.name == "medium" and "high would need 138 MB" in tight.reason
    none = plan(capacity=40)
    assert none.tier.name == "low" and "no tier fits" in none.reason


def test_a_forced_tier_wins_and_says_so():
    forced = plan(capacity=40, tier="high")
    assert forced.tier.name == "high" and forced.reason == "forced by the request (high)"
    assert [o.tier.name for o in forced.options] == ["high"]


def test_a_step_down_keeps_the_lower_options_and_says_why():
    roomy = plan(capacity=300)
    down = roomy.stepped_down(1, "stepped down from high to medium")
    assert down.tier.name == "medium" and down.reason.startswith("stepped down from high to medium (asked: ")
    assert roomy.stepped_down(0, "") is roomy


def test_the_floor_is_derived_from_the_model_unless_set():
    assert floor(DEFAULT, MODEL) == (65.0, "the smallest render needs")  # the emergency render's 49 MB + 16 MB
    given = Settings.from_env({"MIN_REQUIRED_MEMORY_MB": "400"})
    assert floor(given, MODEL) == (400.0, "MIN_REQUIRED_MEMORY_MB asks for")
    assert floor(SEED, MODEL) == (400.0, "the seed's floor is")
    check_floor(DEFAULT, MODEL, capacity_mb=66, headroom_mb=80)
    with pytest.raises(NotEnoughMemory, match=r"too small: 50 MB available for a render, the smallest render needs 65"):
        check_floor(DEFAULT, MODEL, capacity_mb=50, headroom_mb=70)


def test_a_floor_that_is_set_means_available_memory_as_the_seed_meant():
    """The seed refused below 400 MB available; renders running count as free (they give it back)."""
    check_floor(SEED, MODEL, capacity_mb=360, headroom_mb=400)  # 400 available: the seed accepted it
    with pytest.raises(NotEnoughMemory, match=r"399 MB available for a render, the seed's floor is 400 MB"):
        check_floor(SEED, MODEL, capacity_mb=359, headroom_mb=399)
    given = Settings.from_env({"MIN_REQUIRED_MEMORY_MB": "120"})
    check_floor(given, MODEL, capacity_mb=108, headroom_mb=120)


def test_the_shipped_prior_has_every_cell():
    model = load_prior(PRIOR_FILE)
    bands = {band(s) for s in (1, 20)}
    for aspect in ASPECTS:
        for duration_band in bands:
            for name in TIERS:
                for captions in (False, True):
                    for motion in (False, True):
                        assert CostKey("moviepy", name, aspect, captions, motion, duration_band) in model.prior
                    assert CostKey("ffmpeg", name, aspect, captions, False, duration_band) in model.prior
            assert CostKey("emergency", "emergency", aspect, False, False, duration_band) in model.prior
    assert set(model.speech_mb) == {"espeak", "gtts", "piper"}


def test_with_the_shipped_prior_a_still_card_gets_1080p_on_a_512_mb_container():
    """About 300 MB is what a render may hold beside the app in a 512 MB container."""
    chosen = make_plan(Request("Stay hungry."), DEFAULT, load_prior(PRIOR_FILE), 300, 340, 5.0)
    assert chosen.tier.name == "high" and chosen.seed_tier == "low"
    assert chosen.predicted.source == "prior" and chosen.predicted.peak_mb < 200


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


def test_max_resolution_height_caps_every_tier_and_default_bitrate_sets_high():
    s = Settings.from_env({"MAX_RESOLUTION_HEIGHT": "720", "DEFAULT_BITRATE": "1200k"})
    assert tier("high", s).size() == (1280, 720)
    assert tier("high", s).video_kbps == 1200
    assert tier("medium", s).video_kbps == 500
    assert "capped at 720p" in plan(capacity=300, settings=s).reason


def test_unknown_tier_and_aspect_are_refused():
    with pytest.raises(InvalidInput, match="ultra"):
        tier("ultra", DEFAULT)
    with pytest.raises(InvalidInput, match="4:3"):
        tier("low", DEFAULT).size("4:3")


def test_method_chain():
    assert method_chain(Request("x")) == ("ffmpeg", "emergency")
    assert method_chain(Request("x", motion=True)) == ("moviepy", "ffmpeg", "emergency")
    assert method_chain(Request("x", method="moviepy")) == ("moviepy", "ffmpeg", "emergency")
    assert method_chain(Request("x", method="moviepy", fallback=False)) == ("moviepy",)
