"""What the history page reads at scale: bounded samples, rates and outcomes counted in SQL, a
streamed CSV, all honouring the same filters as the figures."""

import csv
import hashlib
import io
import time

import pytest

from engine.history import views
from engine.history.stats import Filters, figures
from engine.models import Attempt, Request
from tests.helpers import result

NOW = time.time()


@pytest.fixture
def seeded(store):
    """300 generations over 3 days: a fifth fell back to FFmpeg after a killed MoviePy attempt."""
    for n in range(300):
        gid = hashlib.md5(str(n).encode()).hexdigest()  # spread over the id space, as random ids are
        store.begin(gid, Request("x"))
        tries = (Attempt("moviepy", "high", "killed", "over", 300, 1), Attempt("ffmpeg", "high", "ok", None, 120, 1))
        attempts = tries if n % 5 == 0 else tries[1:]
        store.finish(result(gid, method="ffmpeg" if n % 3 else "moviepy", attempts=attempts, peak_rss_mb=100 + n))
        with store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE generations SET created_at = ? WHERE id = ?", (NOW - n * 864, gid))
    return store


def test_a_sample_is_bounded_and_spread_over_the_whole_range(seeded):
    picked = views.sample(seeded, Filters(), total=300, points=60)
    assert 30 <= len(picked) <= 90  # about a fifth of the ids fall below the cut
    ages = sorted(NOW - row.created_at for row in picked)
    assert ages[0] < 864 * 60 and ages[-1] > 864 * 240  # from the newest fifth to the oldest
    assert len(views.sample(seeded, Filters(), total=300, points=2000)) == 300  # small: every row


def test_rates_and_outcomes_are_counted_in_sql(seeded):
    day = views.rates(seeded, Filters(), 86400)
    assert sum(n for _, n, _, _ in day) == 300 and sum(f for *_, f in day) == 60
    assert len(day) in (3, 4)  # three days of rows, perhaps split over four calendar buckets
    assert dict(((m, s), n) for m, s, n in views.outcomes(seeded, Filters())) == {
        ("moviepy", "killed"): 60, ("ffmpeg", "ok"): 300,
    }  # fmt: skip
    recent = Filters(since=NOW - 86399)  # the newest 100: ages 0 to 99 × 864 s
    assert sum(n for _, n, _, _ in views.rates(seeded, recent, 3600)) == figures(seeded, recent)["total"] == 100


def test_filters_narrow_every_reader_alike(seeded):
    chosen = Filters(methods=("moviepy",))
    assert views.count(seeded, chosen) == figures(seeded, chosen)["total"] == 100
    assert {row.method for row in views.page(seeded, chosen, 0, 500)} == {"moviepy"}
    assert views.options(seeded, None) == {"tier": ["high"], "method": ["ffmpeg", "moviepy"], "status": ["ok"]}


def test_a_page_is_newest_first(seeded):
    first, second = views.page(seeded, Filters(), 0, 100), views.page(seeded, Filters(), 1, 100)
    stamps = [row.created_at for row in first + second]
    assert len(stamps) == 200 and stamps == sorted(stamps, reverse=True)


def test_the_csv_export_streams_every_matching_row(seeded):
    chunks = list(views.export_csv(seeded, Filters(methods=("ffmpeg",))))
    assert len(chunks) > 1  # a header, then rows a chunk at a time
    rows = list(csv.DictReader(io.StringIO("".join(chunks))))
    assert len(rows) == 200 and {row["method"] for row in rows} == {"ffmpeg"}
