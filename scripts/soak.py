"""Soak: the app's generation path inside a memory-limited cgroup, many requests at once, with
no memory settings at all.

    python scripts/soak.py [--limit-mb 512] [--generations 100] [--concurrency 4]
                           [--cli-limit-mb 256] [--cli-generations 6] [--cli-concurrency 3]

1. The app: a process inside a `--limit-mb` cgroup that imports what the Streamlit app imports
   (so it holds what the app holds) and makes `--generations` mixed videos with
   `--concurrency` requesters through the page's path (shared store, the host's memory ledger,
   jobs off-thread). Reported: success, OOM and watchdog kills, the tier of every video (and
   the share of still cards at high), each render's peak against its prediction, orphans.
2. The CLI: `--cli-generations` runs, `--cli-concurrency` at a time, in a cgroup of
   `--limit-mb` and then of `--cli-limit-mb`, and one run in a cgroup too small for any render.

Needs root for the cgroups; without one it says so and stops. Exit 0 when every target held.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the engine package is beside this folder
from scripts.cgroup import Cgroup, kill_all, run_in_cgroup, start_in_cgroup  # noqa: E402

QUOTES = [
    case["text"]
    for case in json.loads((ROOT / "benchmarks/bench-quotes.json").read_text())["cases"]
    if not case.get("speech_only")
]


def requests(count: int, seed: int = 7):
    from engine.models import Request

    rng = random.Random(seed)
    for n in range(count):
        yield Request(
            text=rng.choice(QUOTES), author="Soak test", tier="auto", captions=n % 3 == 0, motion=n % 5 == 0,
            aspect=rng.choice(["16:9", "9:16", "1:1"]),
        )  # fmt: skip


def worker(generations: int, concurrency: int) -> None:
    """Inside the cgroup: what the app imports, then the page's path, `concurrency` at once."""
    import pandas  # noqa: F401 - the app's own footprint: the history page's libraries
    import plotly.express  # noqa: F401
    import streamlit  # noqa: F401

    from engine.app import charts  # noqa: F401
    from engine.app.resources import shared_ledger, start_up
    from engine.jobs.local import LocalGeneration
    from engine.memory.reading import read_memory
    from engine.settings import Settings

    settings = Settings.from_env()
    store, ledger = start_up(settings), shared_ledger(settings)
    baseline = read_memory(settings.max_memory_mb).app_rss_mb
    queue = list(requests(generations))
    lock = threading.Lock()
    outcomes: list[dict] = []

    def requester() -> None:
        while True:
            with lock:
                if not queue:
                    return
                request = queue.pop()
            job = LocalGeneration(request, settings, store, ledger).start()
            job.wait()
            view = job.snapshot()
            result = view.result or (view.error.result if view.error else None)
            with lock:
                outcomes.append(_outcome(request, result, view.error))

    threads = [threading.Thread(target=requester) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"app_rss_mb": round(baseline, 1), "outcomes": outcomes}))


def _outcome(request, result, error) -> dict:
    return {
        "status": result.status if result else "error", "motion": request.motion, "captions": request.captions,
        "voice": result.tts_engine if result else None,
        "voice_reason": result.tts_fallback_reason if result else None,
        "aspect": request.aspect, "tier": result.tier if result else None, "method": result.method if result else None,
        "wait_s": result.stage_s.get("wait", 0.0) if result else None,
        "attempts": [
            {"method": a.method, "tier": a.tier, "status": a.status, "peak_rss_mb": a.peak_rss_mb,
             "predicted_peak_mb": a.predicted_peak_mb, "budget_mb": a.budget_mb, "error": a.error}
            for a in result.attempts
        ] if result else [],
        "error": str(error) if error else None, "error_kind": error.kind if error else None,
    }  # fmt: skip


def app_phase(args, env: dict[str, str]) -> dict:
    cgroup = Cgroup(f"quote-soak-{os.getpid()}", args.limit_mb)
    started = time.monotonic()
    peak_rss = _watch(cgroup)
    try:
        argv = [sys.executable, str(Path(__file__).resolve()), "--worker", "--generations", str(args.generations),
                "--concurrency", str(args.concurrency)]  # fmt: skip
        done = run_in_cgroup(cgroup, argv, env, ROOT)
        data = json.loads(done.stdout or '{"outcomes": []}')
        report = summarize(data["outcomes"], args.generations)
        report.update(
            limit_mb=args.limit_mb, cgroup=f"v{cgroup.version}", concurrency=args.concurrency,
            app_rss_mb=data.get("app_rss_mb"), worker_exit=done.returncode, peak_cgroup_mb=round(cgroup.peak_mb(), 1),
            peak_rss_mb=round(peak_rss.stop(), 1),
            oom_kills=cgroup.oom_kills(), wall_s=round(time.monotonic() - started, 1),
        )  # fmt: skip
        if done.returncode != 0:
            report["worker_stderr"] = done.stderr[-2000:]
        report["left_in_cgroup"] = len((cgroup.folder / "cgroup.procs").read_text().split())  # orphans
        return report
    finally:
        kill_all(cgroup)
        cgroup.remove()


class _watch:
    """The cgroup's anonymous memory (RSS without page cache), sampled 20 times a second: its peak."""

    def __init__(self, cgroup: Cgroup) -> None:
        self.cgroup, self.peak, self.done = cgroup, 0.0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.wait(0.05):
            try:
                self.peak = max(self.peak, self.cgroup.rss_mb())
            except OSError:
                return

    def stop(self) -> float:
        self.done.set()
        self.thread.join()
        return self.peak


def summarize(outcomes: list[dict], asked: int) -> dict:
    ok = [o for o in outcomes if o["status"] == "ok"]
    still = [o for o in ok if not o["motion"]]
    rendered = [a for o in outcomes for a in o["attempts"] if a["status"] == "ok" and a["predicted_peak_mb"]]
    ratios = [a["peak_rss_mb"] / a["predicted_peak_mb"] for a in rendered]
    from engine.memory.plan import margin_mb

    over = [a for a in rendered if a["peak_rss_mb"] > a["predicted_peak_mb"] + margin_mb(a["predicted_peak_mb"])]
    return {
        "generations": asked, "finished": len(outcomes), "succeeded": len(ok),
        "success_rate": round(len(ok) / asked, 4) if asked else None,
        "watchdog_kills": sum(a["status"] == "killed" for o in outcomes for a in o["attempts"]),
        "tiers": dict(Counter(o["tier"] for o in ok)),
        "still_cards_at_high": round(sum(o["tier"] == "high" for o in still) / len(still), 4) if still else None,
        "methods": dict(Counter(o["method"] for o in ok)),
        "voices": dict(Counter(o["voice"] for o in ok)),
        "voice_fallbacks": sorted({(o["voice_reason"] or "")[:160] for o in ok if o["voice_reason"]})[:5],
        "killed": [dict(a, captions=o["captions"], motion=o["motion"], aspect=o["aspect"])
                   for o in outcomes for a in o["attempts"] if a["status"] == "killed"][:5],
        "fallbacks": sum(len(o["attempts"]) > 1 for o in ok),
        "refusals": dict(Counter(o["error_kind"] for o in outcomes if o["error_kind"])),
        "waits_s": {"median": round(statistics.median(o["wait_s"] for o in ok), 2),
                    "max": round(max(o["wait_s"] for o in ok), 2)} if ok else None,
        "prediction": {
            "renders": len(rendered), "over_prediction_plus_margin": len(over),
            "median_actual_over_predicted": round(statistics.median(ratios), 3) if ratios else None,
            "max_actual_over_predicted": round(max(ratios), 3) if ratios else None,
        },
        "errors": sorted({o["error"] for o in outcomes if o["error"]})[:5],
    }  # fmt: skip


def cli_phase(limit_mb: int, count: int, concurrency: int, env: dict[str, str], seed: int) -> dict:
    """`count` CLI generations, `concurrency` at a time, in one cgroup of `limit_mb`."""
    cgroup = Cgroup(f"quote-soak-cli-{limit_mb}-{os.getpid()}", limit_mb)
    todo = list(requests(count, seed))
    results: list[dict] = []
    try:
        while todo:
            batch, todo = todo[:concurrency], todo[concurrency:]
            procs = []
            for request in batch:
                flags = ["--captions"] if request.captions else []
                argv = [sys.executable, "-m", "engine", "generate", request.text, "--aspect", request.aspect,
                        "--json", *flags]  # fmt: skip
                procs.append(start_in_cgroup(cgroup, argv, env, ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
            for proc in procs:
                out, err = proc.communicate(timeout=600)
                data = json.loads(out or "{}") if out.strip().startswith(b"{") else {}
                results.append({"exit": proc.returncode, "tier": data.get("tier"), "error": data.get("error")
                                or (err.decode().strip().splitlines() or [""])[-1],
                                "attempts": [a["status"] for a in data.get("attempts", [])]})  # fmt: skip
        return {
            "limit_mb": limit_mb, "generations": count, "concurrency": concurrency,
            "succeeded": sum(r["exit"] == 0 for r in results), "exit_codes": dict(Counter(r["exit"] for r in results)),
            "tiers": dict(Counter(r["tier"] for r in results if r["exit"] == 0)),
            "errors": sorted({r["error"] for r in results if r["exit"] != 0 and r["error"]})[:3],
            "peak_cgroup_mb": round(cgroup.peak_mb(), 1), "oom_kills": cgroup.oom_kills(),
            "watchdog_kills": sum(status == "killed" for r in results for status in r["attempts"]),
            "left_in_cgroup": len((cgroup.folder / "cgroup.procs").read_text().split()),
        }  # fmt: skip
    finally:
        kill_all(cgroup)
        cgroup.remove()


def orphans(marker: str) -> list[int]:
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(marker in part for part in proc.info["cmdline"] or ()):
            found.append(proc.pid)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit-mb", type=int, default=512)
    parser.add_argument("--generations", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--cli-limit-mb", type=int, default=256)
    parser.add_argument("--cli-generations", type=int, default=6)
    parser.add_argument("--cli-concurrency", type=int, default=3)
    parser.add_argument("--too-small-mb", type=int, default=60)
    parser.add_argument("--tts", default="espeak", help="TTS_ENGINE: espeak, or piper for the neural voice's soak")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.generations, args.concurrency)
        return 0

    data = Path(tempfile.mkdtemp(prefix="soak-"))
    # Nothing about memory is set: the defaults are the product.
    env = {**os.environ, "DATA_DIR": str(data), "TTS_ENGINE": args.tts, "PYTHONPATH": str(ROOT)}
    for name in ("MAX_MEMORY_MB", "MIN_REQUIRED_MEMORY_MB", "TIER_POLICY"):
        env.pop(name, None)
    try:
        report: dict = {"data_dir": str(data), "app": app_phase(args, env)}
    except RuntimeError as exc:
        print(f"soak: {exc}; nothing measured", file=sys.stderr)
        return 2
    cli = [
        cli_phase(args.limit_mb, args.cli_generations, args.cli_concurrency, env, seed=11),
        cli_phase(args.cli_limit_mb, args.cli_generations, args.cli_concurrency, env, seed=11),
        cli_phase(args.too_small_mb, 1, 1, env, seed=13),
    ]
    report["cli"] = cli
    # Orphans: processes still in a cgroup once its generations were done (counted before the cleanup
    # kill), and any process anywhere still naming the soak's data folder.
    report["orphans"] = (
        report["app"]["left_in_cgroup"] + sum(c["left_in_cgroup"] for c in cli) + len(orphans(str(data)))
    )
    out = ROOT / "soak-results"
    out.mkdir(exist_ok=True)
    (out / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(report, indent=2))
    a, p = report["app"], report["app"]["prediction"]
    print(f"app at {a['limit_mb']} MB ({a['cgroup']}), app itself {a['app_rss_mb']} MB: {a['succeeded']}/"
          f"{a['generations']} succeeded, {a['concurrency']} requesters, peak RSS {a['peak_rss_mb']} MB (with page "
          f"cache {a['peak_cgroup_mb']} MB), OOM kills "
          f"{a['oom_kills']}, watchdog kills {a['watchdog_kills']}, {a['wall_s']} s")  # fmt: skip
    print(f"  tiers {a['tiers']}, still cards at high {a['still_cards_at_high'] or 0:.0%}, methods {a['methods']}, "
          f"fallbacks {a['fallbacks']}, waits {a['waits_s']}")  # fmt: skip
    print(f"  prediction: {p['renders']} renders, {p['over_prediction_plus_margin']} over p95 + margin, median actual/"
          f"predicted {p['median_actual_over_predicted']}, max {p['max_actual_over_predicted']}")  # fmt: skip
    for c in cli:
        print(f"cli at {c['limit_mb']} MB, {c['concurrency']} at a time: {c['succeeded']}/{c['generations']} "
              f"succeeded, exit codes {c['exit_codes']}, tiers {c['tiers']}, peak {c['peak_cgroup_mb']} MB, OOM kills "
              f"{c['oom_kills']}, watchdog kills {c['watchdog_kills']}"
              f"{', ' + c['errors'][0] if c['errors'] else ''}")  # fmt: skip
    print(f"orphan processes: {report['orphans']}")
    held = (
        a["success_rate"] == 1 and a["oom_kills"] == 0 and a["watchdog_kills"] == 0 and report["orphans"] == 0
        and (a["still_cards_at_high"] or 0) >= 0.9 and p["over_prediction_plus_margin"] == 0
        and abs((p["median_actual_over_predicted"] or 0) - 1) <= 0.25
        and cli[0]["succeeded"] == cli[0]["generations"] and cli[1]["succeeded"] == cli[1]["generations"]
        and cli[2]["exit_codes"] == {3: 1} and all(c["oom_kills"] == 0 and c["watchdog_kills"] == 0 for c in cli)
    )  # fmt: skip
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
