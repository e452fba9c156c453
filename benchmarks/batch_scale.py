"""Batch throughput and the batch process's own memory: `python benchmarks/batch_scale.py ROWS [--workers N]`.

Writes ROWS short quotes (the bench's short quote, numbered) to a CSV, runs `python -m engine batch`
on it in a fresh DATA_DIR, reads that process's own resident memory (not its renders') after the
first tenth of the rows, at half way and at the end, prints videos per second and those figures,
and removes what it made.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", type=int)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--tier", default="low")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="batch-scale-"))
    source = folder / "quotes.csv"
    with source.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "tier"])
        writer.writerows([f"Stay hungry. Stay foolish. Number {n}.", args.tier] for n in range(1, args.rows + 1))
    argv = [sys.executable, "-m", "engine", "batch", str(source), "--out", str(folder / "out")]
    if args.workers:
        argv += ["--workers", str(args.workers)]
    env = {**os.environ, "DATA_DIR": str(folder / "data"), "TTS_ENGINE": "espeak"}
    started = time.monotonic()
    child = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    me = psutil.Process(child.pid)
    assert child.stdout is not None
    rows_done, memory = 0, {}
    for line in child.stdout:
        if line.startswith("row "):
            rows_done += 1
            for mark in (max(1, args.rows // 10), args.rows // 2, args.rows):
                if rows_done == mark:
                    with contextlib.suppress(psutil.Error):
                        memory[mark] = round(me.memory_info().rss / 2**20, 1)
    child.wait()
    wall = time.monotonic() - started
    shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({
        "rows": args.rows, "workers": args.workers or "default", "tier": args.tier, "exit": child.returncode,
        "wall_s": round(wall, 1), "videos_per_s": round(args.rows / wall, 2), "batch_process_rss_mb": memory,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
