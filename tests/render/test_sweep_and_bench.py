"""The benchmark and the tuning sweep, end to end (quick versions)."""

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import run_cli


@pytest.mark.timeout(660)  # its command is given 600 s, and says why it failed
def test_bench_quick_reports_ratios_against_plain_moviepy(tmp_path):
    env = {"DATA_DIR": str(tmp_path / "data")}
    done = run_cli("bench", "--quick", "--json", "--out", str(tmp_path / "results"), env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    cells = {(c["tier"], c["method"]): c for c in report["cells"]}
    assert set(cells) == {("high", "plain"), ("high", "moviepy"), ("high", "ffmpeg"), ("emergency", "emergency")}
    plain, fast = cells[("high", "plain")], cells[("high", "ffmpeg")]
    assert plain["faster_x"] is None and fast["faster_x"] == round(plain["wall_s"] / fast["wall_s"], 1)
    assert fast["less_memory_x"] == round(plain["peak_rss_mb"] / fast["peak_rss_mb"], 2)
    assert all(c["ssim"] > 0.9 and c["size_bytes"] > 0 for c in report["cells"])
    assert {t["method"] for t in report["targets"]} == {"ffmpeg", "moviepy"}
    assert {row["method"] for row in report["flat_in_duration"]} == {"moviepy", "ffmpeg", "emergency"}
    assert [row["runs"] for row in report["flat_in_duration"]] == [1, 1, 1]  # quick: once each
    assert report["leak"]["generations"] == 10
    assert report["sampling_overhead"]["samples_per_s"] >= 20
    [whole] = report["end_to_end"]  # the whole command against plain MoviePy, from outside
    assert (whole["case"], whole["method"]) == ("still 16:9", "ffmpeg")
    assert whole["faster_x"] == round(whole["plain_wall_s"] / whole["wall_s"], 1) and whole["peak_mb"] > 20
    [saved] = (tmp_path / "results").glob("bench-*.json")
    assert json.loads(saved.read_text())["cells"] == report["cells"]
    assert not list((tmp_path / "data" / "tmp").iterdir())  # the bench's scratch is gone


def test_sweep_renders_every_tier_and_method_with_frames(tmp_path):
    env = {"DATA_DIR": str(tmp_path / "data")}
    done = run_cli("sweep", "Stay hungry.", "--json", "--out", str(tmp_path / "frames"), env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    cells = json.loads(done.stdout)["cells"]
    assert [(c["tier"], c["method"]) for c in cells] == [
        ("high", "moviepy"), ("high", "ffmpeg"), ("medium", "moviepy"), ("medium", "ffmpeg"),
        ("low", "moviepy"), ("low", "ffmpeg"), ("emergency", "emergency"),
    ]  # fmt: skip
    for cell in cells:
        with Image.open(Path(cell["frame"])) as frame:
            assert frame.size == (cell["width"], cell["height"])


def test_sweep_refuses_bad_input(tmp_path):
    done = run_cli("sweep", "", env={"DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 2 and "empty" in done.stderr


def test_the_sweep_waits_its_turn_and_runs_under_the_watchdog(settings, store, tmp_path):
    """The sweep draws from the same ledger as generations: each render waits for its predicted
    need to fit and may hold only its grant; a render larger than the machine is stopped, and shown.
    While it waits, another process's cleanup finds its folders past their grace and leaves them."""
    import threading
    import time

    from engine.history.storage import TEMP_GRACE_S, cleanup
    from engine.memory.ledger import Ledger, Need
    from engine.render.sweep import sweep

    book = Ledger(settings.data_dir, capacity_mb=lambda: 70.0, poll_s=0.02)
    seen, holding, release = [], threading.Event(), threading.Event()

    def another_render():
        with book.admit([Need("another render", 60, 1)]):
            holding.set()
            release.wait(30)

    other = threading.Thread(target=another_render)
    other.start()
    holding.wait(10)

    def progress(line):
        seen.append(line)
        if line.startswith("waiting for memory") and not release.is_set():
            swept.append(cleanup(settings, store, now=time.time() + 10 * TEMP_GRACE_S).swept_temp)
            release.set()  # the other render ends once the sweep is seen waiting for it

    swept: list[int] = []
    cells = sweep("Stay hungry.", "", settings, settings.temp_dir / "frames", book, progress=progress)
    other.join()
    assert seen[0].startswith("waiting for memory: position 1, 1 render(s) running")
    outcome = {(c.tier, c.method): c for c, _ in cells}
    high = outcome[("high", "moviepy")]  # about 105 MB of its own: over the whole 70 MB
    assert high.status == "killed" and "watchdog" in high.error and high.size_bytes == 0
    assert outcome[("low", "ffmpeg")].status == "ok" and outcome[("emergency", "emergency")].status == "ok"
    assert any("killed by the watchdog" in line for line in seen)
    assert book.view().running == 0
    assert swept == [0] and all(frame.exists() for cell, frame in cells if cell.status == "ok")
    shutil.rmtree(settings.temp_dir / "frames")  # as the page does once it has read them


def test_the_sweep_counts_as_one_of_the_visitors_generations(settings, tmp_path):
    import pytest

    from engine.errors import LimitReached
    from engine.memory.limits import VisitorLimits
    from engine.render.sweep import sweep

    limits = VisitorLimits()
    with limits.hold("v1"), pytest.raises(LimitReached, match="previous video is still being made"):
        sweep("Stay hungry.", "", settings, tmp_path / "frames", None, (limits, "v1"))
