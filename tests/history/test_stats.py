"""Stats on a known set of rows: exact figures."""

import time

import pytest

from engine.history import HistoryStore
from engine.history.stats import spread, stats
from engine.models import Attempt, Request
from tests.helpers import result

NOW = time.time()


@pytest.fixture
def seeded(tmp_path):
    store = HistoryStore(f"sqlite:///{tmp_path / 'history.db'}")
    rows = [
        # id, age s, status, tier, method, peak, wall, duration, attempts, error kind
        ("1", 10, "ok", "high", "ffmpeg", 140.0, 1.0, 10.0, 1, None),
        ("2", 20, "ok", "high", "ffmpeg", 150.0, 2.0, 10.0, 1, None),
        ("3", 30, "ok", "high", "ffmpeg", 160.0, 3.0, 10.0, 2, None),  # fell back
        ("4", 40, "ok", "low", "emergency", 70.0, 1.0, 20.0, 3, None),  # fell back
        ("5", 7200, "error", "medium", None, 300.0, 5.0, 0.0, 3, "render_failed"),
        ("6", 7200, "error", None, None, 0.0, 0.1, 0.0, 0, "invalid_input"),
        ("7", 90000, "ok", "medium", "moviepy", 280.0, 4.0, 10.0, 1, None),
    ]
    for gid, age, status, tier, method, peak, wall, duration, tries, kind in rows:
        gid = gid * 32
        store.begin(gid, Request("x"))
        attempts = tuple(Attempt("moviepy", tier or "low", "killed", "x", peak, 1) for _ in range(tries))
        store.finish(
            result(
                gid, status=status, tier=tier, method=method, peak_rss_mb=peak, wall_s=wall, duration_s=duration,
                attempts=attempts, error=None if status == "ok" else "boom",
            ),
            kind,
        )  # fmt: skip
        with store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE generations SET created_at = ? WHERE id = ?", (NOW - age, gid))
    store.begin("8" * 32, Request("still going"))
    yield store
    store.close()


def test_all_time_figures(seeded):
    s = stats(seeded, "all", now=NOW)
    assert (s["total"], s["succeeded"], s["failed"], s["refused"], s["running"]) == (7, 5, 1, 1, 1)
    assert s["success_rate"] == round(5 / 6, 4)
    assert s["fallback_rate"] == 0.4  # 2 of 5 outputs came from a later method
    assert s["methods"] == {"ffmpeg": 3, "emergency": 1, "moviepy": 1}
    assert s["peak_rss_mb"] == {"median": 155.0, "p95": 300.0, "count": 6}
    assert s["s_per_video_s"] == {"median": 0.2, "p95": 0.4, "count": 5}
    assert set(s["by_tier"]) == {"high", "low", "medium"}
    high = s["by_tier"]["high"]
    assert (high["total"], high["success_rate"], high["fallback_rate"]) == (3, 1.0, round(1 / 3, 4))
    assert high["peak_rss_mb"] == {"median": 150.0, "p95": 160.0, "count": 3}
    assert s["by_tier"]["medium"]["success_rate"] == 0.5
    assert s["by_method"]["ffmpeg"]["peak_rss_mb"]["median"] == 150.0
    assert set(s["by_method"]) == {"ffmpeg", "emergency", "moviepy"}


def test_windows(seeded):
    assert stats(seeded, "hour", now=NOW)["total"] == 4
    assert stats(seeded, "day", now=NOW)["total"] == 6
    assert stats(seeded, "all", now=NOW)["total"] == 7


def test_empty_history_has_no_rates(tmp_path):
    empty = HistoryStore(f"sqlite:///{tmp_path / 'empty.db'}")
    s = stats(empty)
    assert (s["total"], s["success_rate"], s["fallback_rate"]) == (0, None, None)
    assert s["peak_rss_mb"] == {"median": None, "p95": None, "count": 0}
    empty.close()


def test_p95_is_nearest_rank():
    assert spread(list(range(1, 101)))["p95"] == 95
    assert spread([5.0])["p95"] == 5.0
