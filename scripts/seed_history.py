"""Seed a history with N realistic generations, for measuring the history page and stats at scale.

    python scripts/seed_history.py 100000 [--data-dir DIR] [--days 30] [--seed 1]

Rows are spread over the last `--days` days in the mix the soak sees: tiers and methods by the
cost model's usual choices, a few fallbacks (with their killed or failed attempts), refusals and
failures, each generation with its attempts and a memory timeline of 20 to 60 points. Written
through the store's own schema (migrated), in bulk; the store's own writer would take minutes.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from engine.history import HistoryStore, schema  # noqa: E402
from engine.history.store import host_name  # noqa: E402

# (tier, method, peak MB, seconds of render per second of video): what the soak's renders cost
KINDS = [
    ("high", "ffmpeg", 124, 0.03), ("high", "ffmpeg", 127, 0.22), ("high", "moviepy", 227, 0.9),
    ("medium", "ffmpeg", 74, 0.02), ("medium", "moviepy", 152, 0.38), ("low", "ffmpeg", 49, 0.01),
    ("emergency", "emergency", 49, 0.01),
]  # fmt: skip
WEIGHTS = [55, 12, 10, 8, 4, 6, 5]


def rows(count: int, days: float, rng: random.Random):
    """Generations, their attempts and their timelines, as dicts for bulk inserts."""
    now = time.time()
    host = host_name()
    for _ in range(count):
        gid = uuid.uuid4().hex
        created = now - rng.random() * days * 86400
        roll = rng.random()
        tier, method, peak, rate = rng.choices(KINDS, WEIGHTS)[0]
        peak *= rng.uniform(0.93, 1.04)
        duration = rng.uniform(2.0, 60.0)
        aspect = rng.choice(["16:9", "9:16", "1:1"])
        attempts = []
        if roll < 0.02:  # refused before any work
            status, kind, error = "error", rng.choice(["invalid_input", "busy"]), "refused"
            tier = method = None
            duration = peak = 0.0
        elif roll < 0.03:  # every method failed
            status, kind, error = "error", "render_failed", "every render method failed"
            attempts = [("ffmpeg", "high", "failed", peak), ("emergency", "emergency", "failed", 49.0)]
            method, duration = None, 0.0
        else:
            status, kind, error = "ok", None, None
            if roll < 0.06:  # a fallback: the first attempt was stopped
                attempts.append(("moviepy", tier or "high", "killed", peak * 1.3))
            attempts.append((method, tier, "ok", peak))
        wall = rate * duration + rng.uniform(0.3, 1.5) if status == "ok" else rng.uniform(0.01, 1.0)
        generation = {
            "id": gid, "created_at": created, "finished_at": created + wall, "status": status, "error": error,
            "error_kind": kind, "text_chars": rng.randint(10, 2000), "lang": "en", "tts_engine": "espeak",
            "tier_asked": "auto", "tier": tier, "tier_reason": "seeded", "tier_policy": "measured",
            "seed_tier": "low", "method_asked": "auto", "method": method, "fell_back": len(attempts) > 1,
            "peak_rss_mb": round(max((a[3] for a in attempts), default=0.0), 1) or None,
            "available_mb": 340.0, "budget_mb": 306.0, "app_rss_mb": 163.0, "wall_s": round(wall, 3),
            "stage_s": json.dumps({"speech": 0.05, "render": round(wall * 0.8, 3)}),
            "duration_s": round(duration, 2) or None, "aspect": aspect, "captions": rng.random() < 0.3,
            "motion": method == "moviepy", "width": 1920 if tier == "high" else 1280 if tier == "medium" else 854,
            "height": 1080 if tier == "high" else 720 if tier == "medium" else 480,
            "video_kbps": 800, "audio_kbps": 128, "size_bytes": int(duration * 110_000) or None,
            "output_path": f"/data/outputs/quote-{gid}.mp4" if status == "ok" else None, "file_removed": True,
            "host": host, "pid": 1, "ssim": round(rng.uniform(0.99, 0.999), 4) if status == "ok" else None,
            "psnr_db": round(rng.uniform(44, 51), 2) if status == "ok" else None,
            "predicted_peak_mb": round(peak / rng.uniform(0.95, 1.05), 1) if peak else None,
            "predicted_wall_s": round(rate * duration, 2) if duration else None, "prediction_source": "prior",
        }  # fmt: skip
        tries = [
            {"generation_id": gid, "number": n, "method": m, "tier": t, "status": s, "error": None if s == "ok" else s,
             "peak_rss_mb": round(p, 1), "wall_s": round(wall / len(attempts), 3), "budget_mb": 306.0,
             "captions": generation["captions"], "motion": m == "moviepy", "predicted_peak_mb": round(p, 1)}
            for n, (m, t, s, p) in enumerate(attempts, start=1)
        ]  # fmt: skip
        points = rng.randint(20, 60) if attempts else 0
        timeline = [
            {"generation_id": gid, "seq": i, "t_s": round(wall * i / points, 3),
             "rss_mb": round(peak * min(1.0, 2 * i / points) * rng.uniform(0.9, 1.0), 1)}
            for i in range(points)
        ]  # fmt: skip
        yield generation, tries, timeline


def seed(store: HistoryStore, count: int, days: float, rng_seed: int = 1, batch: int = 5000) -> None:
    rng = random.Random(rng_seed)
    pending: tuple[list, list, list] = ([], [], [])
    with store.engine.begin() as conn:
        for generation, tries, timeline in rows(count, days, rng):
            pending[0].append(generation)
            pending[1].extend(tries)
            pending[2].extend(timeline)
            if len(pending[0]) >= batch:
                _flush(conn, pending)
        _flush(conn, pending)


def _flush(conn, pending: tuple[list, list, list]) -> None:
    for table, values in zip((schema.generations, schema.attempts, schema.samples), pending, strict=True):
        if values:
            conn.execute(sa.insert(table), values)
            values.clear()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("count", type=int, help="how many generations")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="the DATA_DIR to seed (history.db)")
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    store = HistoryStore(f"sqlite:///{(args.data_dir / 'history.db').resolve()}")
    started = time.monotonic()
    seed(store, args.count, args.days, args.seed)
    store.close()
    print(f"seeded {args.count} generations in {args.data_dir / 'history.db'} in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
