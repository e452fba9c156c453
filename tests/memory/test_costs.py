"""The cost model: the calibrated prior, cells learned from this host's history, and the
prediction a generation carries into its report."""

import json
import socket

from engine.memory.costs import MIN_RUNS, Cost, CostKey, CostModel, band, key_for, load_prior
from engine.memory.plan import cost_model, preview
from engine.models import Attempt, Request
from engine.pipeline import generate
from tests.helpers import result, run_cli


def record(store, n, method, tier, peak, wall, duration=10.0, aspect="16:9", host=None):
    for i in range(n):
        gid = f"{method[:2]}{tier[:2]}{aspect[:1]}{i:027x}"
        store.begin(gid, Request("x", aspect=aspect))
        attempt = Attempt(method, tier, "ok", None, peak + i, wall, 900)
        store.finish(result(gid, method=method, tier=tier, duration_s=duration, aspect=aspect, attempts=(attempt,)))
    if host is not None:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE generations SET host = ? WHERE aspect = ?", (host, aspect))


def test_bands_and_cells():
    assert [band(s) for s in (5, 14.9, 15, 300)] == ["0-15 s", "0-15 s", "over 15 s", "over 15 s"]
    assert key_for("emergency", "high", "9:16", True, True, 100) == CostKey("emergency", "emergency", "9:16", False,
                                                                            False, "over 15 s")  # fmt: skip
    assert key_for("ffmpeg", "low", "1:1", True, True, 5).motion is False  # only MoviePy renders motion
    assert key_for("moviepy", "low", "1:1", True, True, 5) == CostKey("moviepy", "low", "1:1", True, True, "0-15 s")


def test_a_cell_with_enough_history_replaces_the_prior_and_others_keep_it(store):
    record(store, MIN_RUNS, "ffmpeg", "high", peak=100, wall=1.0)
    record(store, MIN_RUNS - 1, "ffmpeg", "medium", peak=60, wall=1.0)  # too few runs
    model = cost_model(store)
    high = model.predict(CostKey("ffmpeg", "high"))
    assert (high.source, high.runs, high.peak_mb, high.s_per_video_s) == ("history", MIN_RUNS, 107.0, 0.1)
    assert high.wall_s(30) == 3.0
    assert model.predict(CostKey("ffmpeg", "medium")).source == "prior"
    assert model.predict(CostKey("ffmpeg", "high", band="over 15 s")).source == "prior"  # another band


def test_renders_the_watchdog_stopped_raise_their_cells_peak(store):
    record(store, MIN_RUNS - 1, "ffmpeg", "high", peak=100, wall=1.0)
    gid = "k" * 32
    store.begin(gid, Request("x"))
    killed = Attempt("ffmpeg", "high", "killed", "over budget", 180, 0.3, 170)
    saved = Attempt("emergency", "emergency", "ok", None, 49, 0.2, 170)  # the fallback delivered the video
    store.finish(result(gid, method="emergency", tier="emergency", duration_s=10.0, attempts=(killed, saved)))
    cell = cost_model(store).predict(CostKey("ffmpeg", "high"))
    assert (cell.source, cell.runs, cell.peak_mb) == ("history", MIN_RUNS, 180.0)
    assert cell.s_per_video_s == 0.1  # the stopped render has no time of its own


def test_another_hosts_history_does_not_teach_this_one(store):
    record(store, MIN_RUNS, "ffmpeg", "high", peak=100, wall=1.0, host="elsewhere")
    assert socket.gethostname() != "elsewhere"
    assert cost_model(store).predict(CostKey("ffmpeg", "high")).source == "prior"


def test_an_unmeasured_cell_assumes_the_worst_of_its_method_and_tier():
    model = CostModel({CostKey("ffmpeg", "high"): Cost(120, 0.1, 3, "prior"),
                       CostKey("ffmpeg", "high", captions=True): Cost(130, 0.2, 3, "prior")})  # fmt: skip
    unknown = model.predict(CostKey("ffmpeg", "high", aspect="1:1"))
    assert (unknown.peak_mb, unknown.source) == (130, "unknown")
    assert model.predict(CostKey("moviepy", "high")).peak_mb == 700  # nothing known at all


def test_the_forecast_and_the_generation_carry_the_prediction(settings, store):
    text = "Stay hungry. Stay foolish."
    shown = preview(Request(text, tier="low"), settings, store)
    prior = load_prior().predict(CostKey("ffmpeg", "low"))
    assert shown.predicted == prior and shown.options[0].need_mb > prior.peak_mb
    made = generate(Request(text), settings, store=store)
    assert (made.tier_policy, made.prediction_source) == ("measured", "prior")
    assert made.predicted_peak_mb > 0 and made.predicted_wall_s > 0 and made.budget_mb > 0
    assert made.seed_tier in ("high", "medium", "low")
    [attempt] = made.attempts
    assert attempt.predicted_peak_mb == made.predicted_peak_mb and attempt.peak_rss_mb > 0
    row = store.generation(made.generation_id)
    assert (row.predicted_peak_mb, row.tier_policy, row.aspect) == (made.predicted_peak_mb, "measured", "16:9")


def test_calibrate_writes_a_prior_the_engine_reads(tmp_path, settings):
    out = tmp_path / "prior.json"
    done = run_cli("calibrate", "--quick", "--out", str(out), env={"DATA_DIR": str(settings.data_dir)})
    assert done.returncode == 0, done.stderr
    assert "3 render cells and 3 speech engines" in done.stdout
    data = json.loads(out.read_text())
    assert data["written_by"] == "python -m engine calibrate --quick"
    model = load_prior(out)
    still = model.predict(CostKey("ffmpeg", "high"))
    captioned = model.predict(CostKey("ffmpeg", "high", captions=True))
    assert still.source == "prior" and 40 < still.peak_mb < 400 and still.s_per_video_s > 0
    assert captioned.peak_mb > 0 and model.cheapest_mb() < still.peak_mb
    assert model.speech_mb["espeak"] >= 0 and model.speech_mb["gtts"] > 0
