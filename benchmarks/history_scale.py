"""The history at scale: how long its readers take with N generations (default 100,000).

    python -m benchmarks.history_scale [N] [--data-dir DIR]

Seeds N generations with scripts/seed_history.py (unless DIR already holds a history), then
measures, best of three after a first (cold) run each:
- the History page's script run (Streamlit's AppTest, every window), and the Generate page's;
- `GET /api/stats` on a real `streamlit run` (cold: the first request; warm: within the cache);
- `python -m engine stats --json` as a whole process (start-up included).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _best(runs: list[float]) -> float:
    return round(min(runs), 3)


def measure(data: Path) -> dict:
    from streamlit.testing.v1 import AppTest

    from tests.server import StreamlitServer

    os.environ.update(DATA_DIR=str(data), TTS_ENGINE="espeak")
    report: dict = {}
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    for window in ("all", "week", "day"):
        at.session_state["h_window"] = window
        times = []
        for _ in range(4):
            started = time.perf_counter()
            at.switch_page("pages/history.py").run()
            times.append(time.perf_counter() - started)
            assert not at.exception, at.exception
        report[f"history page, {window}"] = {"cold_s": round(times[0], 3), "warm_s": _best(times[1:])}
    times = []
    for _ in range(3):
        started = time.perf_counter()
        at.switch_page("pages/generate.py").run()
        times.append(time.perf_counter() - started)
    report["generate page"] = {"cold_s": round(times[0], 3), "warm_s": _best(times[1:])}

    with StreamlitServer({"DATA_DIR": str(data), "TTS_ENGINE": "espeak"}, data / "streamlit.log") as server:
        times = []
        for _ in range(4):
            started = time.perf_counter()
            with urllib.request.urlopen(f"{server.url}/api/stats", timeout=60) as answer:
                json.loads(answer.read())
            times.append(time.perf_counter() - started)
        report["GET /api/stats"] = {"cold_s": round(times[0], 3), "warm_s": _best(times[1:])}
    times = []
    for _ in range(3):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "engine", "stats", "--json"], cwd=ROOT, capture_output=True,
                              env={**os.environ, "DATA_DIR": str(data)}, check=True)  # fmt: skip
        json.loads(done.stdout)
        times.append(time.perf_counter() - started)
    report["stats --json (whole process)"] = {"cold_s": round(times[0], 3), "warm_s": _best(times[1:])}
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("count", type=int, nargs="?", default=100_000)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    data = args.data_dir or Path(tempfile.mkdtemp(prefix="history-scale-"))
    if not (data / "history.db").exists():
        seed = [sys.executable, str(ROOT / "scripts/seed_history.py"), str(args.count), "--data-dir", str(data)]
        subprocess.run(seed, check=True)
    report = measure(data)
    print(f"{'reader':34}{'cold s':>8}{'warm s':>8}")
    for name, row in report.items():
        print(f"{name:34}{row['cold_s']:>8.3f}{row['warm_s']:>8.3f}")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
