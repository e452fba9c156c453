"""The history store: a row per generation, its attempts and its memory timeline.

A generation is written twice: a `running` row when it starts, then everything else in
one transaction when it ends. A process that dies in between leaves the `running` row,
which the next start marks `interrupted`: never a half-written row.

What a generation writes and the cost model reads is plain SQL (engine.history.database: on a
SQLite file, without SQLAlchemy); the history's pages read through SQLAlchemy Core (`engine`).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from engine.errors import HistoryUnavailable, rebuild
from engine.history.database import (
    SCHEMA_VERSION,
    AlchemyDatabase,
    Database,
    SqliteDatabase,
    is_sqlite,
    set_pragmas,
    sqlite_file,
)
from engine.history.records import AttemptRecord, GenerationRecord
from engine.memory.processes import identity, still_running
from engine.models import NOT_STORED, QueueDelivery, Request, Result
from engine.render.lifetime import die_with_parent, engine_env
from engine.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

MAX_TIMELINE_POINTS = 300
# What planning decided, written on the running row as soon as it is known.
PLANNED = (
    "tier", "tier_reason", "tier_policy", "seed_tier", "aspect", "available_mb", "app_rss_mb", "budget_mb",
    "predicted_peak_mb", "predicted_wall_s", "prediction_source",
)  # fmt: skip


def host_name() -> str:
    """Who ran a generation: the host, and the worker's name where several run on one host."""
    worker = os.environ.get("WORKER_NAME")
    return f"{socket.gethostname()}/{worker}" if worker else socket.gethostname()


def database_url(settings: Settings) -> str:
    return settings.database_url or f"sqlite:///{(settings.data_dir / 'history.db').resolve()}"


class HistoryStore:
    def __init__(self, url: str, busy_timeout_s: float = 30.0) -> None:
        self.url = url
        self.busy_timeout_s = busy_timeout_s
        self.sqlite_path = sqlite_file(url)
        self.db: Database = (
            SqliteDatabase(self.sqlite_path, busy_timeout_s) if self.sqlite_path else AlchemyDatabase(self.engine)
        )
        self.version = self.db.schema_version()
        if self.version < SCHEMA_VERSION:  # migrations need SQLAlchemy: imported only when there is one to run
            from sqlalchemy.exc import SQLAlchemyError

            from engine.history.migrations import migrate

            try:
                with self._migration_lock(), self.engine.begin() as conn:
                    self.version = migrate(conn)
            except SQLAlchemyError as exc:
                raise HistoryUnavailable(str(exc).splitlines()[0]) from exc

    @classmethod
    def open(cls, settings: Settings, migrate_apart: bool = False) -> HistoryStore:
        """The store of `settings`. With `migrate_apart` (the app's and the command line's store), a
        SQLite file behind the schema is migrated by a process of its own first: SQLAlchemy, which
        migrations need (22 MB), is never loaded into a long-lived process for it."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url = database_url(settings)
        if migrate_apart:
            _migrate_apart(url)
        return cls(url)

    @cached_property
    def engine(self) -> Engine:
        """SQLAlchemy's engine on the database, made when first used (by the history's pages)."""
        return _make_engine(self.url, self.busy_timeout_s)

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()

    # writes

    def begin(self, generation_id: str, request: Request, delivery: QueueDelivery | None = None) -> None:
        """The `running` row, written before any work."""
        values = dict(
            id=generation_id,
            created_at=time.time(),
            status="running",
            text_chars=len(request.text),
            lang=request.lang,
            tier_asked=request.tier,
            method_asked=request.method,
            aspect=request.aspect,
            tts_engine=request.tts,
            speed=request.speed,
            preset=request.preset,
            caption_style=request.caption_style,
            music=request.music,
            host=host_name(),
            pid=os.getpid(),
            process=identity(os.getpid()),
            fell_back=False,
            file_removed=False,
            job_id=delivery.job_id if delivery else None,
            delivery=delivery.number if delivery else None,
        )
        with self.db.transaction(write=True) as tx:
            tx.run(_insert("generations", values), values)

    def admitted(self, known: Result) -> None:
        """What the plan chose (tier, why, the memory seen, the prediction), on the running row."""
        values = {name: getattr(known, name) for name in PLANNED}
        with self.db.transaction(write=True) as tx:
            tx.run(
                f"UPDATE generations SET {_assign(values)} WHERE id = :row_id AND status = 'running'",
                {**values, "row_id": known.generation_id},
            )

    def finish(self, result: Result, error_kind: str | None = None) -> None:
        """Everything the generation learned, its attempts and its timeline, in one transaction."""
        values = {
            **stored_values(result),
            "error_kind": error_kind or result.error_kind, "finished_at": time.time(), "fell_back": result.fell_back,
            "stage_s": json.dumps(result.stage_s), "output_path": str(result.output) if result.output else None,
        }  # fmt: skip
        # every Attempt field is a column of the same name (tests/test_one_definition.py)
        attempts = [
            {"generation_id": result.generation_id, "number": n, **asdict(attempt)}
            for n, attempt in enumerate(result.attempts, start=1)
        ]
        points = [
            {"generation_id": result.generation_id, "seq": i, "t_s": t, "rss_mb": r}
            for i, (t, r) in enumerate(downsample(result.timeline, MAX_TIMELINE_POINTS))
        ]
        with self.db.transaction(write=True) as tx:
            assigned = {**values, "row_id": result.generation_id}
            tx.run(f"UPDATE generations SET {_assign(values)} WHERE id = :row_id", assigned)
            for table, rows in (("attempts", attempts), ("samples", points)):
                if rows:
                    tx.run(_insert(table, rows[0]), rows)

    def mark_interrupted(self) -> list[str]:
        """Rows left `running` by a process of this host that is gone: marked, and their ids."""
        with self.db.transaction(write=True) as tx:
            # Rows of this machine (any worker on it): their pids can be checked here.
            rows = tx.rows(
                f"SELECT id, pid, process, created_at FROM generations WHERE status = 'running' AND {OF_HOST}",
                of_host(socket.gethostname()),
            )
            dead = [row_id for row_id, pid, process, created_at in rows if not _writing(pid, process, created_at)]
            if dead:
                why = "the process stopped before the generation finished"
                tx.run(
                    "UPDATE generations SET status = 'interrupted', error = :error, error_kind = 'interrupted', "
                    "finished_at = :at WHERE id = :row_id AND status = 'running'",
                    [{"row_id": row_id, "at": time.time(), "error": why} for row_id in dead],
                )
        return dead

    def mark_lost(self, job_id: str, note: str) -> list[str]:
        """Rows of a queued job left `running` by a worker that was lost, on any host: marked
        interrupted with `note`, and their ids. Rows already marked by a start-up sweep on the
        lost worker's machine get the more telling note too."""
        with self.db.transaction(write=True) as tx:
            lost = tx.rows(
                "UPDATE generations SET status = 'interrupted', error = :note, error_kind = 'worker_lost', "
                "finished_at = :at WHERE job_id = :job_id AND (status = 'running' OR "
                "(status = 'interrupted' AND error_kind = 'interrupted')) RETURNING id",
                {"note": note, "at": time.time(), "job_id": job_id},
            )
        return [row_id for (row_id,) in lost]

    def mark_files_removed(self, paths: list[str]) -> None:
        # One statement a chunk: output_path has no index, so each statement reads the whole table.
        with self.db.transaction(write=True) as tx:
            for at in range(0, len(paths), CHUNK):
                chunk = {f"p{n}": path for n, path in enumerate(paths[at : at + CHUNK])}
                names = ", ".join(f":{name}" for name in chunk)
                tx.run(f"UPDATE generations SET file_removed = :removed WHERE output_path IN ({names})",
                       {**chunk, "removed": True})  # fmt: skip

    # reads

    def generations(self, since: float | None = None) -> list[GenerationRecord]:
        where, params = ("", {}) if since is None else ("WHERE created_at >= :since", {"since": since})
        with self.db.transaction() as tx:
            rows = tx.mappings(f"SELECT * FROM generations {where} ORDER BY created_at", params)
        return [GenerationRecord.from_row(row) for row in rows]

    def recent_cost_rows(self, host: str, generations: int = 2000) -> list[tuple]:
        """The finished attempts of this host's `generations` newest videos (successful ones, and ones
        the watchdog killed: their peak is at least what they reached), as (method, tier, aspect,
        captions, motion, peak MB, wall s, video s, status): what the cost model learns from, read
        through the (host, time) index so the cost stays flat as the history grows."""
        sql = f"""
            SELECT a.method, a.tier, r.aspect, a.captions, a.motion, a.peak_rss_mb, a.wall_s, r.duration_s, a.status
            FROM attempts AS a JOIN (
                SELECT id, duration_s, aspect FROM generations
                WHERE {OF_HOST} AND duration_s > 0 AND aspect IS NOT NULL
                ORDER BY created_at DESC LIMIT :newest
            ) AS r ON a.generation_id = r.id
            WHERE a.status IN ('ok', 'killed') AND a.peak_rss_mb > 0 AND a.wall_s > 0 AND a.captions IS NOT NULL
        """
        with self.db.transaction() as tx:
            rows = tx.rows(sql, {**of_host(host), "newest": generations})
        return [(m, t, aspect, bool(c), bool(mo), peak, wall, s, st) for m, t, aspect, c, mo, peak, wall, s, st in rows]

    def recent_speech_peaks(self, host: str, generations: int = 200) -> list[tuple[str, float]]:
        """(engine, peak MB) of this host's newest generations whose voice spoke in a process of
        its own (Piper): what the cost model learns the voice's need from."""
        sql = f"""
            SELECT tts_engine, tts_peak_mb FROM generations WHERE {OF_HOST} AND tts_peak_mb > 0
            ORDER BY created_at DESC LIMIT :newest
        """
        with self.db.transaction() as tx:
            return [(engine, peak) for engine, peak in tx.rows(sql, {**of_host(host), "newest": generations})]

    def generation(self, generation_id: str) -> GenerationRecord | None:
        with self.db.transaction() as tx:
            rows = tx.mappings("SELECT * FROM generations WHERE id = :row_id", {"row_id": generation_id})
        return GenerationRecord.from_row(rows[0]) if rows else None

    def attempts(self, generation_id: str | None = None) -> list[AttemptRecord]:
        where, params = ("", {}) if generation_id is None else ("WHERE generation_id = :id", {"id": generation_id})
        with self.db.transaction() as tx:
            rows = tx.mappings(f"SELECT * FROM attempts {where} ORDER BY generation_id, number", params)
        return [AttemptRecord.from_row(row) for row in rows]

    def timeline(self, generation_id: str) -> list[tuple[float, float]]:
        with self.db.transaction() as tx:
            rows = tx.rows(
                "SELECT t_s, rss_mb FROM samples WHERE generation_id = :row_id ORDER BY seq", {"row_id": generation_id}
            )
        return [(t_s, rss_mb) for t_s, rss_mb in rows]

    def running_ids(self) -> set[str]:
        with self.db.transaction() as tx:
            return {row_id for (row_id,) in tx.rows("SELECT id FROM generations WHERE status = 'running'")}

    def database_bytes(self) -> int:
        path = self.sqlite_path
        if path is not None:
            return sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())
        if is_sqlite(self.url):
            return 0  # in memory
        with self.db.transaction() as tx:
            return int(tx.rows("SELECT pg_database_size(current_database())")[0][0] or 0)

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """One migrating process at a time: a lock file beside SQLite, an advisory lock on PostgreSQL."""
        path = self.sqlite_path
        if path is None and is_sqlite(self.url):
            yield  # in memory: this process's alone
            return
        if path is None:
            import sqlalchemy as sa

            with self.engine.begin() as conn:
                conn.execute(sa.text("SELECT pg_advisory_lock(4242)"))
                try:
                    yield
                finally:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(4242)"))
            return
        with open(f"{path}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield


def _insert(table: str, columns: Iterable[str]) -> str:
    names = list(columns)
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(':' + name for name in names)})"


def _assign(columns: Iterable[str]) -> str:
    return ", ".join(f"{name} = :{name}" for name in columns)


CHUNK = 500  # paths a statement: well under SQLite's limit of bound parameters

# This host's rows, and those of its workers (`host/worker`): parameters from of_host().
OF_HOST = "(host = :host OR host LIKE :workers ESCAPE '/')"


def of_host(host: str) -> dict[str, str]:
    escaped = host.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return {"host": host, "workers": f"{escaped}//%"}  # the escape character escaped: a literal "/"


def stored_values(result: Result) -> dict[str, object]:
    """The Result's fields that are columns of the same name. A figure still at its zero default
    was never measured (a generation refused before rendering): it is stored as unknown."""
    values: dict[str, object] = {}
    for spec in fields(Result):
        if spec.name in NOT_STORED:
            continue
        value = getattr(result, spec.name)
        unmeasured = value == 0 and spec.default == 0 and not isinstance(value, bool)
        values[spec.name] = None if unmeasured else value
    return values


def downsample(timeline, points: int) -> list[tuple[float, float]]:
    """At most `points` samples, each the peak of its bucket, so the peak is never lost."""
    timeline = list(timeline)
    if len(timeline) <= points:
        return timeline
    size = len(timeline) / points
    buckets = [timeline[int(i * size) : int((i + 1) * size)] for i in range(points)]
    return [max(bucket, key=lambda sample: sample[1]) for bucket in buckets if bucket]


def _writing(pid: int | None, process: str | None, created_at: float) -> bool:
    """Is the process that wrote a row still the one running under that pid? By the kernel's name
    for it, which no clock moves. Otherwise (a row of another PID namespace on this host, a pod's
    other container; a row from before version 9; a host without /proc) as before: by the start
    of the process that has that number here against the row's time, which a wall clock set
    forward reads as gone (and set back, a reused number as the writer)."""
    if pid is None:
        return False
    running = still_running(pid, process) if process else None
    if running is not None:
        return running
    try:
        return psutil.Process(pid).create_time() <= created_at + 1
    except psutil.Error:
        return False


def _migrate_apart(url: str) -> None:
    path = sqlite_file(url)
    if path is None or SqliteDatabase(path, 30.0).schema_version() >= SCHEMA_VERSION:
        return  # another database needs SQLAlchemy anyway; a migrated file needs nothing
    # -P: the engine from its own folder, whatever the current directory holds.
    argv = [sys.executable, "-P", "-m", "engine.history.migrations", url]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, env=engine_env(), timeout=300, preexec_fn=die_with_parent()
        )
    except subprocess.TimeoutExpired:
        raise HistoryUnavailable("its migration took over 300 s; another process may hold history.db.lock") from None
    except OSError as exc:
        raise HistoryUnavailable(f"its migration could not start: {exc.strerror or exc}") from None
    if done.returncode < 0:
        # Stopped by a signal: on a machine this small, out of memory. Migrated here instead (the
        # store does it when it opens a file behind), where the command says if there is room to render.
        log.warning("the history's migration was stopped (signal %d); migrating in this process", -done.returncode)
        return
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"the migration failed with exit {done.returncode}"]
        said = lines[-1].removeprefix("error: ")
        raise rebuild(HistoryUnavailable.kind, said) if said != lines[-1] else HistoryUnavailable(said)


def _make_engine(url: str, busy_timeout_s: float) -> Engine:
    import sqlalchemy as sa

    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url, connect_args={"timeout": busy_timeout_s, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:
        set_pragmas(dbapi_conn, busy_timeout_s)

    return engine
