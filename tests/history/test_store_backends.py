"""The same store tests on SQLite and on a real PostgreSQL server (started on loopback)."""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.history import HistoryStore
from engine.history.migrations import LATEST, MIGRATIONS
from engine.history.stats import stats
from engine.history.store import host_name
from engine.models import Attempt, QueueDelivery, Request
from tests.helpers import ROOT, result

sys.path.insert(0, str(ROOT / "scripts"))
from services import start_postgres


@pytest.fixture(scope="module")
def postgres_url():
    folder = Path(tempfile.mkdtemp(prefix="qts-pg-"))
    folder.chmod(0o711)
    server = start_postgres(folder / "pg", durable=False)
    yield server.url
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.db'}"
    url = request.getfixturevalue("postgres_url")
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # a clean database for every test
        drop_all(conn)
    engine.dispose()
    return url


def drop_all(conn) -> None:
    for table in ("samples", "attempts", "generations", "meta"):  # children first
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))


def test_migrations_from_empty_and_from_the_first_schema(url):
    store = HistoryStore(url)
    assert store.version == LATEST
    store.close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        drop_all(conn)
        MIGRATIONS[0](conn)
        conn.execute(sa.text("INSERT INTO meta (key, value) VALUES ('schema_version', '1')"))
        conn.execute(sa.text("INSERT INTO generations (id, created_at, status, text_chars) VALUES ('x', 1.0, 'ok', 3)"))
    engine.dispose()
    store = HistoryStore(url)
    assert store.version == LATEST and store.generation("x").file_removed is False
    store.close()


def test_round_trip_and_stats(url):
    store = HistoryStore(url)
    for n, fell_back in enumerate([False, False, True]):
        gid = f"{n:032x}"
        store.begin(gid, Request("Stay hungry."))
        tries = (Attempt("moviepy", "high", "killed", "over", 300, 1), Attempt("ffmpeg", "high", "ok", None, 120, 1))
        store.finish(result(gid, attempts=tries if fell_back else tries[1:]))
    figures = stats(store)
    assert (figures["total"], figures["succeeded"], figures["fallback_rate"]) == (3, 3, round(1 / 3, 4))
    assert len(store.timeline(f"{0:032x}")) == 300 and len(store.attempts(f"{2:032x}")) == 2
    store.close()


@pytest.mark.parametrize("worker", [None, "w_1"])
def test_interrupted_rows(url, worker, monkeypatch):
    """A worker's rows (host `machine/worker`) are this machine's too."""
    if worker:
        monkeypatch.setenv("WORKER_NAME", worker)
    store = HistoryStore(url)
    store.begin("a" * 32, Request("x"))
    dead = subprocess.run([sys.executable, "-c", "print(__import__('os').getpid())"], capture_output=True, text=True)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE generations SET pid = :pid"), {"pid": int(dead.stdout)})
    assert store.mark_interrupted() == ["a" * 32]
    assert store.generation("a" * 32).status == "interrupted"
    store.close()


def test_a_hosts_rows_are_its_own_and_its_workers_and_no_other_hosts(url):
    """The host is matched as a prefix with its `_`, `%` and `/` taken literally."""
    store = HistoryStore(url)
    hosts = ["a_b", "a_b/w1", "a_b/w/2", "axb/w1", "a_bc", "a_b%/w1", "A_B/w1"]
    for n, host in enumerate(hosts):
        store.begin(f"{n:032x}", Request("x"))
        store.finish(result(f"{n:032x}", tts_engine="piper", tts_peak_mb=float(n + 1)))
        with store.engine.begin() as conn:
            conn.execute(sa.text("UPDATE generations SET host = :h WHERE id = :id"), {"h": host, "id": f"{n:032x}"})
    found = sorted(peak for _, peak in store.recent_speech_peaks("a_b"))
    # SQLite's LIKE ignores ASCII case (as SQLAlchemy's startswith did there); host names do too.
    assert found == [1.0, 2.0, 3.0, *([7.0] if url.startswith("sqlite") else [])]
    store.close()


def test_files_removed_are_marked_in_chunks(url, monkeypatch):
    monkeypatch.setattr("engine.history.store.CHUNK", 2)
    store = HistoryStore(url)
    for n in range(5):
        store.begin(f"{n:032x}", Request("x"))
        store.finish(result(f"{n:032x}", output=Path(f"/data/outputs/{n}.mp4")))
    store.mark_files_removed([f"/data/outputs/{n}.mp4" for n in (0, 1, 2, 4)] + ["/elsewhere.mp4"])
    assert [row.file_removed for row in store.generations()] == [True, True, True, False, True]
    store.mark_files_removed([])
    store.close()


def test_the_running_row_shows_the_tier_admission_chose(url):
    store = HistoryStore(url)
    store.begin("a" * 32, Request("x"))
    store.admitted(
        result("a" * 32, status="running", tier="medium", tier_reason="700 MB available", available_mb=700.0)
    )
    running = store.generation("a" * 32)
    assert (running.status, running.tier, running.tier_reason, running.available_mb) == (
        "running", "medium", "700 MB available", 700.0,
    )  # fmt: skip
    store.finish(result("a" * 32))
    store.admitted(result("a" * 32, tier="low"))  # late: a finished row keeps what it finished with
    assert store.generation("a" * 32).tier == result("a" * 32).tier
    store.close()


def test_the_cost_model_reads_the_ok_attempts_of_this_hosts_newest_videos_only(url):
    store = HistoryStore(url)
    for n in range(4):
        gid = f"{n:032x}"
        store.begin(gid, Request("x"))
        tries = (
            Attempt("moviepy", "high", "killed", "over", 300, 1),
            Attempt("ffmpeg", "high", "ok", None, 100 + n, 2, captions=n == 3),
        )
        store.finish(result(gid, attempts=tries, duration_s=10.0, aspect="9:16"))
    with store.engine.begin() as conn:  # created in order, a second apart
        for n in range(4):
            conn.execute(sa.text(f"UPDATE generations SET created_at = {1000 + n} WHERE id = '{n:032x}'"))
    assert sorted(store.recent_cost_rows(host_name(), 2)) == [
        ("ffmpeg", "high", "9:16", False, False, 102.0, 2.0, 10.0, "ok"),
        ("ffmpeg", "high", "9:16", True, False, 103.0, 2.0, 10.0, "ok"),
        ("moviepy", "high", "9:16", False, False, 300.0, 1.0, 10.0, "killed"),
        ("moviepy", "high", "9:16", False, False, 300.0, 1.0, 10.0, "killed"),
    ]
    assert store.recent_cost_rows("another-host", 2) == []
    store.close()


def test_a_lost_workers_rows_are_found_by_their_job_on_any_host(url):
    store = HistoryStore(url)
    store.begin("a" * 32, Request("x"), QueueDelivery("job-1"))
    store.begin("b" * 32, Request("x"), QueueDelivery("job-2"))
    store.begin("c" * 32, Request("x"), QueueDelivery("job-1", number=2))
    store.finish(result("c" * 32))
    store.begin("d" * 32, Request("x"), QueueDelivery("job-1", number=2))
    with store.engine.begin() as conn:  # the lost workers ran on another machine, whose start-up swept one
        conn.execute(sa.text("UPDATE generations SET host = 'elsewhere/w1', pid = 1"))
        conn.execute(
            sa.text(
                f"UPDATE generations SET status = 'interrupted', error_kind = 'interrupted' WHERE id = '{'d' * 32}'"
            )
        )
    assert sorted(store.mark_lost("job-1", "lost; taken over by here/w2")) == ["a" * 32, "d" * 32]
    lost, other, retry, swept = (store.generation(c * 32) for c in "abcd")
    assert swept.error == lost.error and swept.error_kind == "worker_lost"
    assert (lost.status, lost.error, lost.error_kind, lost.job_id) == (
        "interrupted", "lost; taken over by here/w2", "worker_lost", "job-1",
    )  # fmt: skip
    assert other.status == "running" and (retry.status, retry.delivery) == ("ok", 2)
    assert store.mark_lost("job-1", "again") == []
    store.close()


WRITER = """
import sys, uuid
from engine.history import HistoryStore
from engine.models import Request
from tests.helpers import result
store = HistoryStore(sys.argv[1])
for i in range(25):
    gid = uuid.uuid4().hex
    store.begin(gid, Request("concurrent"))
    store.finish(result(gid))
"""


def test_two_processes_write_at_once(url):
    HistoryStore(url).close()  # migrate first, as the app does at start-up
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, url], cwd=ROOT, stderr=subprocess.PIPE) for _ in range(2)
    ]
    errors = [w.communicate(timeout=120)[1].decode() for w in writers]
    assert [w.returncode for w in writers] == [0, 0], errors
    store = HistoryStore(url)
    assert len(store.generations()) == 50
    store.close()
