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
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
from streamlit.testing.v1 import AppTest

from engine.history import HistoryStore
from engine.jobs.remote import RemoteGeneration
from engine.models import Request
from engine.settings import Settings
from tests.helpers import ROOT, outermost, wait_for
from tests.server import LONG_LIVED

sys.path.insert(0, str(ROOT / "scripts"))
from cluster import start_worker as start_celery_worker
from services import start_postgres, start_redis, stop_group

LONG = (
    "Twenty years from now you will be more disappointed by the things that you didn't do than by the ones "
    "you did do. So throw off the bowlines. Sail away from the safe harbor. Catch the trade winds in your sails."
)

LEASE_S = 4  # short, so a lost worker's job moves on in seconds
SLOW = Request(LONG * 6, tier="high", method="moviepy", fallback=False)  # renders for longer than a lease


@pytest.fixture(scope="module")
def cluster():
    # Not under pytest's private temp folder: PostgreSQL runs as its own user and must reach it.
    folder = Path(tempfile.mkdtemp(prefix="qts-cluster-"))
    folder.chmod(0o711)
    redis = start_redis(folder / "redis")
    LONG_LIVED.add(redis.proc.pid)
    postgres = start_postgres(folder / "pg", durable=False)
    env = {**os.environ, "BROKER_URL": redis.url, "DATABASE_URL": postgres.url, "DATA_DIR": str(folder / "data"),
           "TTS_ENGINE": "espeak", "PYTHONPATH": str(ROOT), "JOB_LEASE_S": str(LEASE_S)}  # fmt: skip
    workers = {}

    def start_worker(name: str, host: str | None = None, **settings: str) -> subprocess.Popen:
        log = (folder / f"{name}.log").open("ab")
        proc = start_celery_worker(name, {**env, **settings}, log=log, host=host)
        LONG_LIVED.add(proc.pid)
        workers[name] = proc
        return proc

    for name in ("w1", "w2"):
        start_worker(name)
    settings = Settings.from_env(env)
    state = {"env": env, "settings": settings, "workers": workers, "start_worker": start_worker, "pg": postgres.url,
             "redis": redis}  # fmt: skip
    _wait_for_workers(settings)
    yield state
    for proc in workers.values():
        stop_group(proc)
        LONG_LIVED.discard(proc.pid)
    state["redis"].stop()
    LONG_LIVED.discard(state["redis"].proc.pid)
    postgres.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def two_workers_after(cluster):
    """Each test leaves the cluster as it found it: Redis up, workers w1 and w2 and no other. The
    tests put back what they kill or stop; this does it when one fails before it gets that far, so
    that the tests after it do not fail for it."""
    yield
    changed = False
    for name, proc in list(cluster["workers"].items()):
        if name not in ("w1", "w2") or proc.poll() is not None:
            stop_group(cluster["workers"].pop(name))
            LONG_LIVED.discard(proc.pid)
            changed = True
    redis = cluster["redis"]
    if redis.proc.poll() is not None:
        LONG_LIVED.discard(redis.proc.pid)
        cluster["redis"] = start_redis(redis.folder, port=redis.port)
        LONG_LIVED.add(cluster["redis"].proc.pid)
        changed = True
    for name in ("w1", "w2"):
        if name not in cluster["workers"]:
            cluster["start_worker"](name)
            changed = True
    if changed:
        _wait_for_workers(cluster["settings"])


def _wait_for_workers(settings: Settings, timeout_s: float = 60) -> None:
    job = RemoteGeneration(Request("Ready.", tier="low"), settings).start()
    assert job.wait(timeout_s), "no worker took a first job"


def history(state) -> HistoryStore:
    return HistoryStore(state["pg"])


def test_a_job_from_the_app_runs_on_a_worker_and_lands_in_the_shared_history(cluster):
    job = RemoteGeneration(
        Request("Stay hungry. Stay foolish.", tier="low", captions=True), cluster["settings"]
    ).start()
    assert job.wait(120)
    view = job.snapshot()
    assert view.result is not None and view.result.status == "ok", view.error
    assert view.result.output.exists() and view.message.startswith("done on ")
    store = history(cluster)
    row = store.generation(view.result.generation_id)
    store.close()
    assert row.status == "ok" and row.host == job.worker and view.message == f"done on {job.worker}"
    assert row.host.startswith(f"{socket.gethostname()}/w")


def test_the_pages_send_a_job_to_the_workers_and_show_which_host_ran_what(cluster, monkeypatch):
    for name in ("BROKER_URL", "DATABASE_URL", "DATA_DIR", "TTS_ENGINE", "JOB_LEASE_S"):
        monkeypatch.setenv(name, cluster["env"][name])
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60).run()
    at.text_area(key="text").input("Stay hungry. Stay foolish.")
    at.radio(key="tier").set_value("low")
    at.button(key="generate").click().run()
    job = at.session_state["generation"]
    assert isinstance(job, RemoteGeneration) and job.wait(120)
    at.run()
    assert not at.exception and len(at.get("video")) == 1
    worker = job.worker
    at.switch_page("pages/history.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert worker in set(table["host"]) and job.task_id in set(table["job_id"])


def test_two_workers_share_a_burst_with_none_lost_or_run_twice(cluster):
    store = history(cluster)
    before = {g.id for g in store.generations()}
    long = RemoteGeneration(SLOW, cluster["settings"]).start()
    busy = _rendering_on(long)  # one worker is busy with it: the burst must go to the other
    jobs = [
        RemoteGeneration(Request(f"Stay hungry, number {n}.", tier="low"), cluster["settings"]).start()
        for n in range(10)
    ]
    last = jobs[-1].snapshot()  # two workers hold a job each at most: the last one waits its turn
    assert last.stage == "queued" and last.message.startswith("position "), last
    assert all(job.wait(180) for job in jobs) and long.wait(300)
    views = [job.snapshot() for job in jobs]
    assert [v.result.status for v in views] == ["ok"] * 10
    made = [g for g in store.generations() if g.id not in before]
    store.close()
    assert len(made) == 11 and len({g.id for g in made}) == 11  # none lost, none twice
    hosts = Counter(g.host.split("/")[-1] for g in made if g.job_id != long.task_id)
    assert set(hosts) - {busy}, hosts  # the other worker took the burst while this one was busy


def test_a_render_longer_than_the_lease_runs_once(cluster):
    job = RemoteGeneration(SLOW, cluster["settings"]).start()
    _rendering_on(job)
    # The render child is paused until its worker has renewed the job's lease past the time it would
    # have expired: without renewals, another worker's sweep would have handed the job out again.
    import redis

    client = redis.Redis.from_url(cluster["env"]["BROKER_URL"])
    tag, taken = client.zrange("unacked_index", -1, -1, withscores=True)[0]  # the job just taken
    [child] = wait_for(_render_children)
    child.suspend()
    try:
        wait_for(lambda: (client.zscore("unacked_index", tag) or 0) > taken + LEASE_S, timeout_s=LEASE_S * 5)
    finally:
        child.resume()
    assert job.wait(300)
    view = job.snapshot()
    assert view.result is not None and view.result.status == "ok", view.error
    store = history(cluster)
    [row] = [g for g in store.generations() if g.job_id == job.task_id]
    store.close()
    assert (row.status, row.delivery, row.job_id) == ("ok", 1, job.task_id)


def _rendering_on(job: RemoteGeneration, not_on: str = "", timeout_s: float = 120) -> str:
    """The worker name (w1, w2) once the job renders on a worker other than `not_on`."""
    deadline = time.monotonic() + timeout_s
    while True:
        view = job.snapshot()
        if view.stage == "render":
            worker = job.worker.split("/")[-1]
            if worker != not_on:
                return worker
        assert not view.done and time.monotonic() < deadline, f"the job never rendered off {not_on!r}: {view}"
        time.sleep(0.1)


def _kill(cluster, worker: str) -> None:
    proc = cluster["workers"][worker]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _render_children() -> list:
    """Every MoviePy render child on this machine (the workers are not this test's children)."""
    found = [p for p in psutil.process_iter(["cmdline"]) if "engine.render.child" in " ".join(p.info["cmdline"] or [])]
    return outermost(found)


def test_a_worker_killed_mid_render_leaves_its_job_to_the_other(cluster):
    job = RemoteGeneration(SLOW, cluster["settings"]).start()
    victim = _rendering_on(job)
    _kill(cluster, victim)
    killed = time.monotonic()
    assert job.wait(180), "the job was not completed by the other worker"
    done = job.snapshot()
    print(f"a killed worker's job finished on the other {time.monotonic() - killed:.1f} s after the kill")
    assert done.result is not None and done.result.status == "ok", done.error
    assert done.message.endswith(f"/{'w2' if victim == 'w1' else 'w1'}")
    assert not _render_children()  # the killed worker's render died with it
    store = history(cluster)
    rows = sorted((g for g in store.generations() if g.job_id == job.task_id), key=lambda g: g.created_at)
    store.close()
    assert [(g.status, g.delivery) for g in rows] == [("interrupted", 1), ("ok", 2)]  # recorded as a retry
    assert rows[0].error_kind == "worker_lost" and rows[0].error.endswith(f"taken over by {rows[1].host}")
    cluster["start_worker"](victim)


def test_a_job_that_loses_two_workers_is_not_tried_a_third_time(cluster):
    job = RemoteGeneration(SLOW, cluster["settings"]).start()
    first = _rendering_on(job)
    _kill(cluster, first)
    second = _rendering_on(job, not_on=first)
    _kill(cluster, second)
    cluster["start_worker"](first)
    assert job.wait(180)
    view = job.snapshot()
    assert view.result is None and "lost twice" in view.message and "try a lower tier" in view.message
    store = history(cluster)
    rows = sorted((g for g in store.generations() if g.job_id == job.task_id), key=lambda g: g.created_at)
    store.close()
    assert [(g.status, g.delivery) for g in rows] == [("interrupted", 1), ("interrupted", 2)]
    assert rows[1].error.endswith("not tried again")
    cluster["start_worker"](second)
    _wait_for_workers(cluster["settings"])


def test_a_worker_on_another_host_picks_its_own_tier_and_its_lost_job_is_taken_over_here(cluster):
    for name in ("w1", "w2"):  # only the other host's worker at first
        stop_group(cluster["workers"].pop(name))
    far = cluster["start_worker"]("w3", host="q2s-host-b", MAX_MEMORY_MB="290")  # about 160 MB for a render
    job = RemoteGeneration(replace(SLOW, tier="auto"), cluster["settings"]).start()
    assert _rendering_on(job, timeout_s=120) == "w3"
    _kill(cluster, "w3")
    cluster["start_worker"]("w1")
    assert job.wait(180), "the job was not taken over from the lost host"
    done = job.snapshot()
    assert done.result is not None and done.message == f"done on {socket.gethostname()}/w1", done
    store = history(cluster)
    rows = sorted((g for g in store.generations() if g.job_id == job.task_id), key=lambda g: g.created_at)
    store.close()
    # Each worker chose the tier from its own memory: MoviePy at 1080p (about 200 MB) fits here, not there.
    assert [(g.host, g.tier, g.status) for g in rows] == [
        ("q2s-host-b/w3", "medium", "interrupted"), (f"{socket.gethostname()}/w1", "high", "ok"),
    ], rows  # fmt: skip
    assert rows[0].error_kind == "worker_lost" and far.returncode is not None
    cluster["workers"].pop("w3")
    cluster["start_worker"]("w2")


def test_a_redis_crash_loses_no_finished_result(cluster):
    request = Request("Stay hungry. Stay foolish.", tier="low")
    job = RemoteGeneration(request, cluster["settings"]).start()
    assert job.wait(120) and job.snapshot().result is not None
    # The finished result is in Redis's append-only file (written at once; fsynced every second,
    # which only a machine crash, not a process crash, would need).
    aof = Path(cluster["redis"].folder)
    wait_for(lambda: any(job.task_id.encode() in f.read_bytes() for f in aof.rglob("*.aof*") if f.is_file()))
    old = cluster["redis"]
    old.proc.kill()  # a crash, not a clean shutdown
    old.proc.wait()
    LONG_LIVED.discard(old.proc.pid)
    cluster["redis"] = start_redis(old.folder, port=old.port)
    LONG_LIVED.add(cluster["redis"].proc.pid)
    again = RemoteGeneration(request, cluster["settings"])
    again.task_id = job.task_id  # a page polling the same job after the restart
    view = again.snapshot()
    assert view.done and view.result is not None and view.result.generation_id == job.snapshot().result.generation_id
    _wait_for_workers(cluster["settings"])  # and the workers carry on with the new server


def test_a_cli_waiting_on_a_job_stops_with_a_sentence_when_redis_goes_away(cluster, tmp_path):
    """Redis stops and stays stopped: the CLI does not hang; after QUEUE_SILENCE_S it says so."""
    env = {**os.environ, **cluster["env"], "QUEUE_SILENCE_S": "3"}
    cli = subprocess.Popen(
        [sys.executable, "-m", "engine", "generate", SLOW.text, "--tier", "high", "--method", "moviepy",
         "--no-fallback", "--json"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    store = history(cluster)
    wait_for(lambda: [g for g in store.generations() if g.status == "running" and g.text_chars == len(SLOW.text)], 120)
    store.close()
    old = cluster["redis"]
    old.proc.kill()
    old.proc.wait()
    LONG_LIVED.discard(old.proc.pid)
    try:
        out, err = cli.communicate(timeout=60)
        assert cli.returncode == 1, out + err
        assert "the job queue has not answered for 3 s (QUEUE_SILENCE_S)" in err
    finally:
        cli.kill()
        cluster["redis"] = start_redis(old.folder, port=old.port)
        LONG_LIVED.add(cluster["redis"].proc.pid)
        _wait_for_workers(cluster["settings"])


def test_a_refusal_on_a_worker_arrives_as_the_same_error_with_its_figures(cluster):
    """A worker too small for any render refuses with NotEnoughMemory; the caller gets that class,
    with its figures, not a Busy rebuilt from an exit code."""
    from engine.errors import NotEnoughMemory

    for name in ("w1", "w2"):
        stop_group(cluster["workers"].pop(name))
    cluster["start_worker"]("w5", MIN_REQUIRED_MEMORY_MB="10000000")
    try:
        job = RemoteGeneration(Request("Stay hungry.", tier="low"), cluster["settings"]).start()
        assert job.wait(120)
        error = job.snapshot().error
        assert type(error) is NotEnoughMemory and error.exit_code == 3
        assert error.needed_mb == 10_000_000 and error.needed_by == "MIN_REQUIRED_MEMORY_MB asks for"
        assert str(error).startswith("this machine is too small: ")
    finally:
        stop_group(cluster["workers"].pop("w5"))
        cluster["start_worker"]("w1")
        cluster["start_worker"]("w2")
        _wait_for_workers(cluster["settings"])
