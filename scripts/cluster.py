"""`make cluster`: Redis, PostgreSQL, two Celery workers and the app, all on this machine.

    python scripts/cluster.py [--workers 2] [--port 8501]     run until Ctrl-C
    python scripts/cluster.py --throughput 20                 20 generations with 1, then 2 workers
    python scripts/cluster.py --lose-a-worker 20              kill a worker mid-job under 20 more: none lost

The servers keep their data in DATA_DIR/cluster (default ./data/cluster), so history and
finished results survive a restart. For several hosts, see README ("Scale out").
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from services import start_postgres, start_redis, stop_group  # noqa: E402


def start_worker(name: str, env: dict[str, str], log=None, host: str | None = None) -> subprocess.Popen:
    """One Celery worker, one render at a time, in its own process group; stderr to `log` if given.
    With `host`, the worker gets that host name in a UTS namespace of its own (root only): a
    second "host" on one machine, for trying what several hosts do to the shared history."""
    argv = [sys.executable, "-m", "celery", "-A", "engine.jobs.worker", "worker", "--pool", "solo", "-n", f"{name}@%h",
            "--loglevel", "WARNING"]  # fmt: skip
    if host:
        argv = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', host, *argv]
    return subprocess.Popen(argv, cwd=ROOT, env={**env, "WORKER_NAME": name}, stderr=log, start_new_session=True)


def throughput(count: int, env: dict[str, str]) -> None:
    from engine.jobs.remote import RemoteGeneration
    from engine.models import Request
    from engine.settings import Settings

    settings = Settings.from_env(env)
    for workers in (1, 2):
        procs = [start_worker(f"w{n}", env) for n in range(1, workers + 1)]
        try:
            RemoteGeneration(Request("Warm up.", tier="low"), settings).start().wait(120)
            started = time.monotonic()
            jobs = [RemoteGeneration(Request(f"Stay hungry, stay foolish, {n}.", tier="low"), settings).start()
                    for n in range(count)]  # fmt: skip
            for job in jobs:
                job.wait(600)
            wall = time.monotonic() - started
            ok = sum(job.snapshot().result is not None for job in jobs)
            hosts = sorted({str(job.worker) for job in jobs})
            print(f"{workers} worker(s): {ok}/{count} in {wall:.1f} s = {count / wall:.2f} videos/s; ran on {hosts}")
        finally:
            for proc in procs:
                stop_group(proc)


def lose_a_worker(count: int, env: dict[str, str]) -> None:
    """A long job and `count` short ones on two workers; the long job's worker is SIGKILLed mid-render."""
    from engine.history import HistoryStore
    from engine.jobs.remote import RemoteGeneration
    from engine.models import Request
    from engine.settings import Settings

    settings = Settings.from_env(env)
    procs = {name: start_worker(name, env) for name in ("w1", "w2")}
    try:
        RemoteGeneration(Request("Warm up.", tier="low"), settings).start().wait(120)
        text = "Catch the trade winds in your sails. Explore. Dream. Discover. " * 12
        long = RemoteGeneration(Request(text, tier="high", method="moviepy", fallback=False), settings).start()
        while (view := long.snapshot()).stage != "render":
            if view.done:
                raise SystemExit(f"the long job ended before it rendered: {view.message}")
            time.sleep(0.1)
        short = [RemoteGeneration(Request(f"Stay hungry, stay foolish, {n}.", tier="low"), settings).start()
                 for n in range(count)]  # fmt: skip
        victim = long.worker.split("/")[-1]
        os.killpg(procs[victim].pid, signal.SIGKILL)
        killed = time.monotonic()
        print(f"{victim} killed mid-render of the long job; {count} short jobs submitted")
        jobs = [long, *short]
        for job in jobs:
            job.wait(600)
        ok = sum(job.snapshot().result is not None for job in jobs)
        after = time.monotonic() - killed
        print(f"{ok}/{len(jobs)} finished; the long job {long.snapshot().message}, {after:.1f} s after the kill "
              f"(its second run took {long.snapshot().result.wall_s:.1f} s)")  # fmt: skip
        store = HistoryStore(settings.database_url)
        ids = {job.task_id for job in jobs}
        rows = [g for g in store.generations() if g.job_id in ids]
        store.close()
        long_rows = sorted((g.delivery, g.status) for g in rows if g.job_id == long.task_id)
        print(f"history: {sum(1 for g in rows if g.status == 'ok')} ok rows for {len(ids)} jobs; "
              f"the long job's rows {long_rows}")  # fmt: skip
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                stop_group(proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--throughput", type=int, default=0, help="measure this many generations, then stop")
    parser.add_argument("--lose-a-worker", type=int, default=0, help="kill a worker mid-job under this many more")
    args = parser.parse_args()
    # A stop from a service manager (SIGTERM) tidies up like Ctrl-C: workers, app and servers stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    data = Path(os.environ.get("DATA_DIR", "data")).resolve()
    folder = data / "cluster"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o711)
    for parent in folder.parents:  # PostgreSQL runs as its own user and must reach its folder
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o011)
    redis = start_redis(folder / "redis", port=6390)
    fresh = not (folder / "pg" / "PG_VERSION").exists()
    postgres = start_postgres(folder / "pg", port=5440) if fresh else None
    if postgres is None:  # an existing cluster: start it again
        from services import Postgres, _as_postgres, _pg_bin

        postgres = Postgres(folder / "pg", 5440, _pg_bin())
        options = f"-p 5440 -c listen_addresses=127.0.0.1 -c unix_socket_directories={postgres.folder}"
        _as_postgres([str(postgres.bin_dir / "pg_ctl"), "-D", str(postgres.folder), "-o", options, "-w",
                      "-l", str(postgres.folder / "log"), "start"])  # fmt: skip
    env = {**os.environ, "BROKER_URL": redis.url, "DATABASE_URL": postgres.url, "DATA_DIR": str(data),
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    print(f"redis {redis.url}\npostgres {postgres.url}")
    procs: list[subprocess.Popen] = []
    try:
        if args.throughput or args.lose_a_worker:
            if args.throughput:
                throughput(args.throughput, env)
            if args.lose_a_worker:
                lose_a_worker(args.lose_a_worker, env)
            return 0
        procs = [start_worker(f"w{n}", env) for n in range(1, args.workers + 1)]
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(args.port),
             "--server.headless", "true"], cwd=ROOT, env=env, start_new_session=True,
        ))  # fmt: skip
        print(f"app http://localhost:{args.port} with {args.workers} workers; Ctrl-C stops everything")
        while all(p.poll() is None for p in procs):
            time.sleep(1)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in procs:
            stop_group(proc)
        redis.stop()
        postgres.stop()


if __name__ == "__main__":
    sys.exit(main())
