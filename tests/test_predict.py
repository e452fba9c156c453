"""Tiers learned from history: predictions from like renders, and the tier they choose."""

import pytest

from engine.history import HistoryStore
from engine.memory.costs import MIN_RUNS, band, estimated_duration_s, learn
from engine.memory.forecast import forecast
from engine.memory.tiers import choose_tier
from engine.models import Attempt, Request
from engine.settings import Settings

from .test_history import result

SETTINGS = Settings.from_env({})


@pytest.fixture
def store(tmp_path):
    store = HistoryStore(f"sqlite:///{tmp_path / 'history.db'}")
    yield store
    store.close()


def record(store: HistoryStore, n: int, method: str, tier: str, peak: float, wall: float, duration: float = 10.0):
    for i in range(n):
        gid = f"{method[:2]}{tier[:2]}{i:028x}"
        store.begin(gid, Request("x"))
        attempt = Attempt(method, tier, "ok", None, peak + i, wall, 900)
        store.finish(result(gid, method=method, tier=tier, duration_s=duration, attempts=(attempt,)))


def test_enough_like_renders_make_a_prediction(store):
    record(store, MIN_RUNS, "ffmpeg", "high", peak=120, wall=1.0)
    record(store, MIN_RUNS - 1, "ffmpeg", "medium", peak=80, wall=1.0)  # too few
    profile = learn(store)
    high = profile.get("ffmpeg", "high", 10.0)
    assert (high.runs, high.p95_peak_mb, high.median_s_per_video_s) == (5, 124.0, 0.1)
    assert high.wall_s(30) == 3.0
    assert profile.get("ffmpeg", "medium", 10.0) is None
    assert profile.get("ffmpeg", "high", 100.0) is None  # another duration band


def test_the_best_tier_whose_p95_fits_the_budget_is_chosen(store):
    record(store, 6, "ffmpeg", "high", peak=300, wall=1.0)
    record(store, 6, "ffmpeg", "medium", peak=150, wall=1.0)
    profile = learn(store)
    learned = lambda name: profile.get("ffmpeg", name, 10.0)  # noqa: E731
    roomy = choose_tier(400, "auto", SETTINGS, learned, budget_mb=360)  # the seed would say low
    assert roomy.tier.name == "high" and "learned from 6 ffmpeg renders" in roomy.reason
    tight = choose_tier(400, "auto", SETTINGS, learned, budget_mb=200)
    assert tight.tier.name == "medium" and tight.prediction.p95_peak_mb == 155
    none_fit = choose_tier(400, "auto", SETTINGS, learned, budget_mb=100)
    assert none_fit.tier.name == "low" and "below 512 MB" in none_fit.reason  # the seed's rule


def test_without_history_the_seed_thresholds_hold(store):
    learned = lambda name: learn(store).get("ffmpeg", name, 10.0)  # noqa: E731
    assert choose_tier(2048, "auto", SETTINGS, learned, budget_mb=1800).tier.name == "high"
    assert choose_tier(700, "auto", SETTINGS, learned, budget_mb=600).tier.name == "medium"


def test_forecast_and_generation_carry_the_prediction(settings, store):
    text = "Stay hungry. Stay foolish."
    record(store, 6, "ffmpeg", "low", peak=70, wall=0.4, duration=estimated_duration_s(text))
    plan = forecast(Request(text, tier="low"), settings, store)
    assert plan.choice.prediction.p95_peak_mb == 75 and plan.predicted_wall_s > 0
    from engine.pipeline import generate

    made = generate(Request(text, tier="low"), settings, store=store)
    assert made.predicted_peak_mb == 75 and made.predicted_wall_s > 0
    assert made.peak_rss_mb > 0  # the report sets the actual beside it


def test_bands():
    assert [band(s) for s in (5, 30, 100, 400)] == ["0-15 s", "15-60 s", "60-180 s", "over 180 s"]
