"""The history store on real SQLite files: migrations, round trips, crashes, concurrent writers."""

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa

from engine.errors import HistoryUnavailable, InvalidInput, NotEnoughMemory, RenderFailed
from engine.history import HistoryStore, database_url
from engine.history.database import SCHEMA_VERSION
from engine.history.migrations import LATEST, MIGRATIONS, current_version
from engine.history.store import downsample
from engine.memory.processes import identity
from engine.models import Request
from engine.pipeline import generate
from tests.helpers import ROOT, result, wait_for


def test_a_new_file_is_migrated_to_the_latest_version(tmp_path):
    path = tmp_path / "fresh.db"
    store = HistoryStore(f"sqlite:///{path}")
    assert store.version == LATEST == SCHEMA_VERSION == 9  # the version a generation checks without SQLAlchemy
    with store.engine.connect() as conn:
        assert set(sa.inspect(conn).get_table_names()) == {"meta", "generations", "attempts", "samples"}
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
    store.close()


def test_the_first_schema_is_migrated_and_keeps_its_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'v1.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        MIGRATIONS[0](conn)
        conn.execute(sa.text("INSERT INTO meta VALUES ('schema_version', '1')"))
        conn.execute(
            sa.text(
                "INSERT INTO generations (id, created_at, status, text_chars, tier, method, peak_rss_mb) "
                "VALUES ('a' || hex(randomblob(15)), 1700000000, 'ok', 29, 'low', 'moviepy', 250.5)"
            )
        )
        assert current_version(conn) == 1
        assert "budget_mb" not in {c["name"] for c in sa.inspect(conn).get_columns("attempts")}
    engine.dispose()
    store = HistoryStore(url)
    assert store.version == 9
    [old] = store.generations()
    assert (old.tier, old.method, old.peak_rss_mb, old.file_removed, old.fell_back) == (
        "low",
        "moviepy",
        250.5,
        False,
        False,
    )
    assert old.host is None and old.process is None and old.ssim is None and store.timeline(old.id) == []
    store.close()


def _first_schema(url: str, extra: str | None = None) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        MIGRATIONS[0](conn)
        conn.execute(sa.text("INSERT INTO meta VALUES ('schema_version', '1')"))
        conn.execute(sa.text("INSERT INTO generations (id, created_at, status, text_chars) VALUES ('x', 1.0, 'ok', 3)"))
        if extra:
            conn.execute(sa.text(extra))
    engine.dispose()


def test_an_older_history_is_migrated_by_a_process_of_its_own(settings, monkeypatch):
    settings.data_dir.mkdir(parents=True)
    _first_schema(database_url(settings))
    monkeypatch.setattr("engine.history.migrations.migrate", lambda conn: pytest.fail("migrated in this process"))
    store = HistoryStore.open(settings, migrate_apart=True)
    assert store.version == SCHEMA_VERSION and [row.id for row in store.generations()] == ["x"]
    store.close()


def test_a_migration_that_fails_apart_says_why(settings):
    settings.data_dir.mkdir(parents=True)
    _first_schema(database_url(settings), "CREATE TABLE samples (x INTEGER)")  # what version 2 makes
    with pytest.raises(HistoryUnavailable, match=r"^the history database could not be read or written \(.*samples"):
        HistoryStore.open(settings, migrate_apart=True)


def test_a_generation_round_trips(store):
    store.begin("a" * 32, Request("Stay hungry.", tier="high", method="auto"))
    [running] = store.generations()
    assert running.status == "running" and running.text_chars == 12 and running.tier_asked == "high"
    assert running.fell_back is False and running.file_removed is False  # flags, not SQLite's 0 and 1
    store.finish(result("a" * 32))
    row = store.generation("a" * 32)
    assert (row.status, row.method, row.tier, row.peak_rss_mb, row.size_bytes) == (
        "ok",
        "ffmpeg",
        "high",
        141.0,
        700_000,
    )
    assert json.loads(row.stage_s) == {"speech": 0.3, "render": 1.0}
    assert row.finished_at >= row.created_at and row.output_path == "/data/outputs/x.mp4"
    [attempt] = store.attempts("a" * 32)
    assert (attempt.number, attempt.method, attempt.status, attempt.budget_mb) == (1, "ffmpeg", "ok", 1800.0)
    timeline = store.timeline("a" * 32)
    assert len(timeline) == 300 and max(r for _, r in timeline) == 96.0


def test_a_generation_does_not_import_sqlalchemy(settings, tmp_path):
    """SQLAlchemy's modules (22 MB) would sit in the CLI's process beside every encoder. A new
    history is migrated (with SQLAlchemy) by a process of its own."""
    script = textwrap.dedent(f"""
        import sys
        from engine.app.cli import main
        code = main(["generate", "Stay hungry.", "--tier", "low", "--tts", "espeak", "--out", "{tmp_path / "a.mp4"}"])
        print(code, sorted(name for name in sys.modules if name.startswith("sqlalchemy"))[:3])
    """)  # fmt: skip
    env = {**os.environ, "DATA_DIR": str(settings.data_dir), "TTS_ENGINE": "espeak"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.splitlines()[-1] == "0 []", done.stderr[-500:]
    store = HistoryStore.open(settings)
    assert store.version == SCHEMA_VERSION
    [row] = store.generations()
    assert row.status == "ok" and row.tier == "low" and row.pid > 0 and store.attempts(row.id)[0].status == "ok"
    assert len(store.timeline(row.id)) > 0
    store.close()


@pytest.mark.parametrize("form", ["sqlite+pysqlite:///{}", "sqlite:///{}?timeout=5", "sqlite:///:memory:"])
def test_every_form_of_a_sqlite_url_is_served(tmp_path, form):
    folder = tmp_path / "a b"
    folder.mkdir()
    store = HistoryStore(form.format(folder / "h.db"))
    store.begin("a" * 32, Request("x"))
    store.finish(result("a" * 32))
    assert [row.status for row in store.generations()] == ["ok"] and store.database_bytes() >= 0
    store.close()
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".db") == ([] if "memory" in form else ["h.db"])


def test_downsample_keeps_the_peak_and_order():
    points = [(i / 10, 10.0) for i in range(1000)]
    points[517] = (51.7, 999.0)
    thin = downsample(points, 100)
    assert len(thin) == 100 and (51.7, 999.0) in thin
    assert [t for t, _ in thin] == sorted(t for t, _ in thin)
    assert downsample(points[:5], 100) == points[:5]


def test_a_row_left_running_by_a_dead_process_is_marked_interrupted(store):
    store.begin("b" * 32, Request("x"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE generations SET pid = :pid"), {"pid": int(dead.stdout)})
    store.begin("c" * 32, Request("y"))  # this process: still running
    assert store.mark_interrupted() == ["b" * 32]
    assert store.generation("b" * 32).status == "interrupted"
    assert store.generation("c" * 32).status == "running"
    assert store.running_ids() == {"c" * 32}


def test_a_live_writer_stays_running_whatever_the_wall_clock_did(store, monkeypatch):
    """psutil's create_time adds the boot time as the wall clock has it now: stepped forward by 5 s
    (a VM resumed, NTP), a writer that began its row within a second of starting (a CLI) read as
    started after its row, and a start-up beside it marked its generation interrupted."""
    store.begin("a" * 32, Request("x"))
    with store.engine.begin() as conn:  # written as a CLI writes it, just after it started
        conn.execute(sa.text("UPDATE generations SET created_at = :t"), {"t": psutil.Process().create_time() + 0.5})
    booted = psutil.boot_time()
    monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: booted + 5)  # the clock, stepped
    assert store.mark_interrupted() == []
    assert store.generation("a" * 32).status == "running"


def test_a_writer_is_known_by_the_kernels_name_for_it(store):
    """A pid given to another process (the number reused), a row of another boot, a zombie: gone.
    A row of another PID namespace on this host, where its pid means nothing, or one whose name
    does not read: by the start of the process with that number here and the row's time, as before
    version 9 (this process, started before the row, reads as the writer)."""
    zombie = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    zombie_name = identity(zombie.pid)
    zombie.stdin.close()  # it exits, and is not waited for
    wait_for(lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE)
    boot, namespace, born = identity(os.getpid()).split()
    names = {
        "a": (os.getpid(), f"{boot} {namespace} {float(born) + 1:.0f}"),  # this pid, started later
        "b": (os.getpid(), f"another-boot {namespace} {born}"),
        "c": (zombie.pid, zombie_name),
        "d": (os.getpid(), f"{boot} {int(namespace) + 1} {float(born) + 1:.0f}"),  # another namespace
        "e": (os.getpid(), "not a name"),
        "f": (os.getpid(), f"{boot} {namespace} {born}"),  # this very process
    }
    for name in names:
        store.begin(name * 32, Request("x"))
    with store.engine.begin() as conn:
        for name, (pid, named) in names.items():
            conn.execute(sa.text("UPDATE generations SET pid = :pid, process = :p WHERE id = :i"),
                         {"pid": pid, "p": named, "i": name * 32})  # fmt: skip
    try:
        assert sorted(store.mark_interrupted()) == ["a" * 32, "b" * 32, "c" * 32]
        assert [store.generation(name * 32).status for name in "def"] == ["running"] * 3
    finally:
        zombie.wait()


WRITER = textwrap.dedent(
    """
    import sys, uuid
    from dataclasses import replace
    from engine.history import HistoryStore
    from engine.models import Request
    from tests.helpers import result
    store = HistoryStore(sys.argv[1])
    for i in range(40):
        gid = uuid.uuid4().hex
        store.begin(gid, Request("concurrent " + str(i)))
        store.finish(result(gid))
    """
)


def test_two_processes_write_at_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    root = Path(__file__).resolve().parents[2]
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, url], cwd=root, stderr=subprocess.PIPE) for _ in range(2)
    ]
    errors = [w.communicate(timeout=120)[1].decode() for w in writers]
    assert [w.returncode for w in writers] == [0, 0], errors
    store = HistoryStore(url)
    rows = store.generations()
    assert len(rows) == 80 and all(r.status == "ok" for r in rows)
    assert len(store.attempts()) == 80
    store.close()


def test_every_generate_is_recorded_even_refused_and_failed(settings, store):
    ok = generate(Request("Stay hungry.", tier="low"), settings, store=store)
    with pytest.raises(InvalidInput):
        generate(Request(""), settings, store=store)
    with pytest.raises(NotEnoughMemory):
        generate(Request("Hello"), replace(settings, min_required_memory_mb=10**7), store=store)
    with pytest.raises(RenderFailed):
        generate(Request("Hello", tier="low", crash_methods=("ffmpeg", "emergency")), settings, store=store)
    rows = {r.id: r for r in store.generations()}
    assert len(rows) == 4
    assert rows[ok.generation_id].status == "ok" and rows[ok.generation_id].output_path == str(ok.output)
    kinds = sorted(r.error_kind or "" for r in rows.values())
    assert kinds == ["", "invalid_input", "not_enough_memory", "render_failed"]
    failed = next(r for r in rows.values() if r.error_kind == "render_failed")
    assert [a.status for a in store.attempts(failed.id)] == ["crashed", "crashed"]
    assert store.timeline(ok.generation_id)
