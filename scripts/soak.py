"""Soak: the app's generation path inside a memory-limited cgroup, many requests at once.

    python scripts/soak.py [--limit-mb 512] [--generations 100] [--concurrency 4]
                           [--cli-limit-mb 256] [--cli-generations 10]

Creates a cgroup (v2, or v1's memory controller) with the limit where this machine allows
it, runs a worker inside it that makes `--generations` mixed videos with `--concurrency`
requesters through the shared admission gate, and reports success rate, fallbacks,
peak memory of the cgroup, OOM kills and orphan processes. Then the CLI, one generation
after another, in a smaller cgroup. Without a usable cgroup it says so and stops.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the engine package is beside this folder
QUOTES = [case["text"] for case in json.loads((ROOT / "benchmarks/bench-quotes.json").read_text())["cases"]]


class Cgroup:
    """A memory-limited cgroup: v2 where a writable unified hierarchy exists, else v1."""

    def __init__(self, name: str, limit_mb: int) -> None:
        self.limit = limit_mb * 1024 * 1024
        for base, version in ((Path("/sys/fs/cgroup"), 2), (Path("/sys/fs/cgroup/unified"), 2),
                              (Path("/sys/fs/cgroup/memory"), 1)):  # fmt: skip
            folder = base / name
            try:
                if version == 2 and not (base / "cgroup.controllers").exists():
                    continue
                if version == 2 and "memory" not in (base / "cgroup.controllers").read_text().split():
                    continue
                folder.mkdir()
                limit_file = folder / ("memory.max" if version == 2 else "memory.limit_in_bytes")
                limit_file.write_text(str(self.limit))
                if version == 1:
                    swap = folder / "memory.memsw.limit_in_bytes"  # no swap to hide in
                    if swap.exists():
                        with contextlib.suppress(OSError):
                            swap.write_text(str(self.limit))
                self.folder, self.version = folder, version
                return
            except OSError:
                if folder.exists():
                    folder.rmdir()
        raise RuntimeError("no writable memory cgroup on this machine (needs root and a cgroup hierarchy)")

    def add(self, pid: int) -> None:
        (self.folder / "cgroup.procs").write_text(str(pid))

    def peak_mb(self) -> float:
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        path = self.folder / name
        return int(path.read_text()) / 2**20 if path.exists() else float("nan")

    def oom_kills(self) -> int:
        path = self.folder / ("memory.events" if self.version == 2 else "memory.oom_control")
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def remove(self) -> None:
        for _ in range(50):
            try:
                self.folder.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def requests(count: int, seed: int = 7):
    from engine.models import Request

    rng = random.Random(seed)
    for n in range(count):
        yield Request(
            text=rng.choice(QUOTES), author="Soak test", tier="auto", captions=n % 3 == 0, motion=n % 5 == 0,
            aspect=rng.choice(["16:9", "9:16", "1:1"]),
        )  # fmt: skip


def worker(generations: int, concurrency: int) -> None:
    """Inside the cgroup: the page's path (shared store, shared gate, jobs off-thread)."""
    from engine.app.resources import shared_gate, shared_store
    from engine.jobs.local import GenerationJob
    from engine.settings import Settings

    settings = Settings.from_env()
    store, gate = shared_store(settings), shared_gate(settings)
    queue = list(requests(generations))
    lock = threading.Lock()
    outcomes: list[dict] = []

    def requester() -> None:
        while True:
            with lock:
                if not queue:
                    return
                request = queue.pop()
            job = GenerationJob(request, settings, store, gate).start()
            job.wait()
            view = job.snapshot()
            result = view.result or (view.error.result if view.error else None)
            with lock:
                outcomes.append({
                    "status": result.status if result else "error", "method": result.method if result else None,
                    "attempts": [a.status for a in result.attempts] if result else [],
                    "peak_rss_mb": result.peak_rss_mb if result else None,
                    "error": str(view.error) if view.error else None,
                })  # fmt: skip

    threads = [threading.Thread(target=requester) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps(outcomes))


def run_in_cgroup(cgroup: Cgroup, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Start `argv` paused on stdin, move it into the cgroup, then let it go."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import os, sys; sys.stdin.readline(); os.execv(sys.argv[1], sys.argv[1:])", *argv],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    cgroup.add(proc.pid)
    out, err = proc.communicate("go\n", timeout=3600)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


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
    parser.add_argument("--cli-generations", type=int, default=10)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.generations, args.concurrency)
        return 0

    data = Path(tempfile.mkdtemp(prefix="soak-"))
    # A 512 MB container leaves the app about 450 MB: renders must fit beside it, so the
    # pre-generation check asks for what the low tier needs, not the seed's 400 MB.
    env = {**os.environ, "DATA_DIR": str(data), "TTS_ENGINE": "espeak", "MIN_REQUIRED_MEMORY_MB": "120",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    report: dict = {"data_dir": str(data)}
    try:
        app = Cgroup(f"quote-soak-{os.getpid()}", args.limit_mb)
    except RuntimeError as exc:
        print(f"soak: {exc}; nothing measured", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        done = run_in_cgroup(app, [sys.executable, str(Path(__file__).resolve()), "--worker", "--generations",
                                   str(args.generations), "--concurrency", str(args.concurrency)], env)  # fmt: skip
        outcomes = json.loads(done.stdout or "[]")
        ok = sum(o["status"] == "ok" for o in outcomes)
        fell_back = Counter(o["method"] for o in outcomes if o["status"] == "ok" and len(o["attempts"]) > 1)
        report["app"] = {
            "limit_mb": args.limit_mb, "cgroup": f"v{app.version}", "generations": args.generations,
            "concurrency": args.concurrency, "finished": len(outcomes), "succeeded": ok,
            "success_rate": round(ok / args.generations, 4), "worker_exit": done.returncode,
            "methods": dict(Counter(o["method"] for o in outcomes if o["method"])),
            "fallbacks_to": dict(fell_back),
            "attempt_outcomes": dict(Counter(s for o in outcomes for s in o["attempts"])),
            "peak_cgroup_mb": round(app.peak_mb(), 1), "oom_kills": app.oom_kills(),
            "errors": sorted({o["error"] for o in outcomes if o["error"]})[:5],
            "wall_s": round(time.monotonic() - started, 1),
        }  # fmt: skip
    finally:
        app.remove()
    cli = Cgroup(f"quote-soak-cli-{os.getpid()}", args.cli_limit_mb)
    try:
        codes = []
        for request in list(requests(args.cli_generations, seed=11)):
            flags = ["--captions"] if request.captions else []
            done = run_in_cgroup(cli, [sys.executable, "-m", "engine", "generate", request.text, "--aspect",
                                       request.aspect, "--json", *flags], env)  # fmt: skip
            codes.append(done.returncode)
        report["cli"] = {
            "limit_mb": args.cli_limit_mb, "generations": args.cli_generations, "succeeded": codes.count(0),
            "exit_codes": dict(Counter(codes)), "peak_cgroup_mb": round(cli.peak_mb(), 1), "oom_kills": cli.oom_kills(),
        }  # fmt: skip
    finally:
        cli.remove()
    report["orphans"] = len(orphans(str(data)))
    out = ROOT / "soak-results"
    out.mkdir(exist_ok=True)
    (out / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(report, indent=2))
    a, c = report["app"], report["cli"]
    print(f"app at {a['limit_mb']} MB ({a['cgroup']}): {a['succeeded']}/{a['generations']} succeeded "
          f"({a['success_rate']:.0%}), {a['concurrency']} requesters, peak {a['peak_cgroup_mb']} MB, "
          f"OOM kills {a['oom_kills']}, methods {a['methods']}, fallbacks to {a['fallbacks_to'] or 'none'}, "
          f"{a['wall_s']} s")  # fmt: skip
    print(f"cli at {c['limit_mb']} MB: {c['succeeded']}/{c['generations']} succeeded, peak {c['peak_cgroup_mb']} MB, "
          f"OOM kills {c['oom_kills']}")  # fmt: skip
    print(f"orphan processes: {report['orphans']}")
    return 0 if a["success_rate"] == 1 and a["oom_kills"] == 0 and report["orphans"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
