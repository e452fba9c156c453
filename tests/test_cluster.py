"""Scale-out against real servers on loopback: Redis (broker and results), PostgreSQL (shared
history), two Celery workers. Jobs go through the same path the page and the CLI use."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from engine.history import HistoryStore
from engine.models import Request
from engine.remote import RemoteJob
from engine.settings import Settings

from .server import LONG_LIVED

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from cluster import start_worker as start_celery_worker  # noqa: E402
from services import start_postgres, start_redis, stop_group  # noqa: E402

LONG = (
    "Twenty years from now you will be more disappointed by the things that you didn't do than by the ones "
    "you did do. So throw off the bowlines. Sail away from the safe harbor. Catch the trade winds in your sails."
)


@pytest.fixture(scope="module")
def cluster():
    # Not under pytest's private temp folder: PostgreSQL runs as its own user and must reach it.
    folder = Path(tempfile.mkdtemp(prefix="qts-cluster-"))
    folder.chmod(0o711)
    redis = start_redis(folder / "redis")
    LONG_LIVED.add(redis.proc.pid)
    postgres = start_postgres(folder / "pg")
    env = {**os.environ, "BROKER_URL": redis.url, "DATABASE_URL": postgres.url, "DATA_DIR": str(folder / "data"),
           "TTS_ENGINE": "espeak", "PYTHONPATH": str(ROOT)}  # fmt: skip
    workers = {}

    def start_worker(name: str) -> subprocess.Popen:
        proc = start_celery_worker(name, env, log=(folder / f"{name}.log").open("wb"))
        LONG_LIVED.add(proc.pid)
        workers[name] = proc
        return proc

    for name in ("w1", "w2"):
        start_worker(name)
    settings = Settings.from_env(env)
    state = {"env": env, "settings": settings, "workers": workers, "start_worker": start_worker, "pg": postgres.url}
    _wait_for_workers(settings)
    yield state
    for proc in workers.values():
        stop_group(proc)
        LONG_LIVED.discard(proc.pid)
    redis.stop()
    LONG_LIVED.discard(redis.proc.pid)
    postgres.stop()
    shutil.rmtree(folder, ignore_errors=True)


def _wait_for_workers(settings: Settings, timeout_s: float = 60) -> None:
    job = RemoteJob(Request("Ready.", tier="low"), settings).start()
    assert job.wait(timeout_s), "no worker took a first job"


def history(state) -> HistoryStore:
    return HistoryStore(state["pg"])


def test_a_job_from_the_app_runs_on_a_worker_and_lands_in_the_shared_history(cluster):
    job = RemoteJob(Request("Stay hungry. Stay foolish.", tier="low", captions=True), cluster["settings"]).start()
    assert job.wait(120)
    view = job.snapshot()
    assert view.result is not None and view.result.status == "ok", view.error
    assert view.result.output.exists() and view.message.startswith("done on ")
    store = history(cluster)
    row = store.generation(view.result.generation_id)
    store.close()
    assert row.status == "ok" and row.host == view.message.removeprefix("done on ")
    assert row.host.startswith(f"{socket.gethostname()}/w")


def test_two_workers_share_a_burst_with_none_lost_or_run_twice(cluster):
    store = history(cluster)
    before = {g.id for g in store.generations()}
    jobs = [RemoteJob(Request(f"Stay hungry, number {n}.", tier="low"), cluster["settings"]).start() for n in range(10)]
    waiting = [job.snapshot() for job in jobs[-3:]]
    assert all(v.stage in ("queued", "started", "render", "speech", "admit", "card", "done") for v in waiting)
    assert all(job.wait(180) for job in jobs)
    views = [job.snapshot() for job in jobs]
    assert [v.result.status for v in views] == ["ok"] * 10
    made = [g for g in store.generations() if g.id not in before]
    store.close()
    assert len(made) == 10 and len({g.id for g in made}) == 10  # none lost, none twice
    assert len(Counter(g.host for g in made)) == 2  # both workers took some


@pytest.mark.slow  # Redis hands the job out again only after the visibility timeout and its restore cycle
def test_a_worker_killed_mid_render_leaves_its_job_to_the_other(cluster):
    job = RemoteJob(Request(LONG * 2, tier="high", method="moviepy", fallback=False), cluster["settings"]).start()
    deadline = time.monotonic() + 120
    while (view := job.snapshot()).stage != "render":
        assert time.monotonic() < deadline, "the job never started rendering"
        time.sleep(0.1)
    victim = view.message.rsplit("(on ", 1)[1].rstrip(")").split("/")[-1]
    proc = cluster["workers"][victim]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert job.wait(400), "the job was not completed by the other worker"
    done = job.snapshot()
    assert done.result is not None and done.result.status == "ok"
    assert done.message.endswith(f"/{'w2' if victim == 'w1' else 'w1'}")
    lost = [p for p in psutil.process_iter(["cmdline"]) if "engine.render.child" in " ".join(p.info["cmdline"] or [])]
    assert not lost  # the killed worker's render died with it
    store = history(cluster)
    rows = [g for g in store.generations() if g.text_chars == len(LONG * 2)]
    store.close()
    assert sorted(g.status for g in rows) == ["interrupted", "ok"]  # the lost run is recorded as such
    cluster["start_worker"](victim)
