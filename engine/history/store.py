"""The history store: a row per generation, its attempts and its memory timeline.

A generation is written twice: a `running` row when it starts, then everything else in
one transaction when it ends. A process that dies in between leaves the `running` row,
which the next start marks `interrupted`: never a half-written row.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields
from pathlib import Path

import psutil
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.history import schema
from engine.history.migrations import migrate
from engine.history.records import AttemptRecord, GenerationRecord
from engine.models import NOT_STORED, QueueDelivery, Request, Result
from engine.settings import Settings

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
        self.engine = _make_engine(url, busy_timeout_s)
        with self._migration_lock(), self.engine.begin() as conn:
            self.version = migrate(conn)

    @classmethod
    def open(cls, settings: Settings) -> HistoryStore:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(database_url(settings))

    @property
    def sqlite_path(self) -> Path | None:
        database = self.engine.url.database
        return Path(database) if self.engine.url.get_backend_name() == "sqlite" and database else None

    def close(self) -> None:
        self.engine.dispose()

    # writes

    def begin(self, generation_id: str, request: Request, delivery: QueueDelivery | None = None) -> None:
        """The `running` row, written before any work."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(schema.generations).values(
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
                    fell_back=False,
                    file_removed=False,
                    job_id=delivery.job_id if delivery else None,
                    delivery=delivery.number if delivery else None,
                )
            )

    def admitted(self, known: Result) -> None:
        """What the plan chose (tier, why, the memory seen, the prediction), on the running row."""
        g = schema.generations
        values = {name: getattr(known, name) for name in PLANNED}
        with self.engine.begin() as conn:
            conn.execute(sa.update(g).where(g.c.id == known.generation_id, g.c.status == "running").values(**values))

    def finish(self, result: Result, error_kind: str | None = None) -> None:
        """Everything the generation learned, its attempts and its timeline, in one transaction."""
        g = schema.generations
        values = {
            **stored_values(result),
            "error_kind": error_kind or result.error_kind, "finished_at": time.time(), "fell_back": result.fell_back,
            "stage_s": json.dumps(result.stage_s), "output_path": str(result.output) if result.output else None,
        }  # fmt: skip
        with self.engine.begin() as conn:
            conn.execute(sa.update(g).where(g.c.id == result.generation_id).values(**values))
            if result.attempts:
                conn.execute(
                    sa.insert(schema.attempts),
                    [  # every Attempt field is a column of the same name (tests/test_one_definition.py)
                        {"generation_id": result.generation_id, "number": n, **asdict(attempt)}
                        for n, attempt in enumerate(result.attempts, start=1)
                    ],
                )
            points = downsample(result.timeline, MAX_TIMELINE_POINTS)
            if points:
                conn.execute(
                    sa.insert(schema.samples),
                    [
                        dict(generation_id=result.generation_id, seq=i, t_s=t, rss_mb=r)
                        for i, (t, r) in enumerate(points)
                    ],
                )

    def mark_interrupted(self) -> list[str]:
        """Rows left `running` by a process of this host that is gone: marked, and their ids."""
        g = schema.generations
        with self.engine.begin() as conn:
            # Rows of this machine (any worker on it): their pids can be checked here.
            machine = socket.gethostname()
            rows = conn.execute(
                sa.select(g.c.id, g.c.pid, g.c.created_at).where(
                    g.c.status == "running",
                    sa.or_(g.c.host == machine, g.c.host.startswith(f"{machine}/", autoescape=True)),
                )
            ).all()
            dead = [row.id for row in rows if not _alive_since(row.pid, row.created_at)]
            if dead:
                conn.execute(
                    sa.update(g)
                    .where(g.c.id.in_(dead), g.c.status == "running")
                    .values(
                        status="interrupted",
                        error="the process stopped before the generation finished",
                        error_kind="interrupted",
                        finished_at=time.time(),
                    )
                )
        return dead

    def mark_lost(self, job_id: str, note: str) -> list[str]:
        """Rows of a queued job left `running` by a worker that was lost, on any host: marked
        interrupted with `note`, and their ids. Rows already marked by a start-up sweep on the
        lost worker's machine get the more telling note too."""
        g = schema.generations
        swept = sa.and_(g.c.status == "interrupted", g.c.error_kind == "interrupted")
        with self.engine.begin() as conn:
            lost = conn.execute(
                sa.update(g)
                .where(g.c.job_id == job_id, sa.or_(g.c.status == "running", swept))
                .values(status="interrupted", error=note, error_kind="worker_lost", finished_at=time.time())
                .returning(g.c.id)
            ).all()
        return [row.id for row in lost]

    def mark_files_removed(self, paths: list[str]) -> None:
        if not paths:
            return
        g = schema.generations
        with self.engine.begin() as conn:
            conn.execute(sa.update(g).where(g.c.output_path.in_(paths)).values(file_removed=True))

    # reads

    def generations(self, since: float | None = None) -> list[GenerationRecord]:
        g = schema.generations
        query = sa.select(g).order_by(g.c.created_at)
        if since is not None:
            query = query.where(g.c.created_at >= since)
        with self.engine.connect() as conn:
            return [GenerationRecord.from_row(row) for row in conn.execute(query)]

    def recent_cost_rows(self, host: str, generations: int = 2000) -> list[tuple]:
        """The finished attempts of this host's `generations` newest videos (successful ones, and ones
        the watchdog killed: their peak is at least what they reached), as (method, tier, aspect,
        captions, motion, peak MB, wall s, video s, status): what the cost model learns from, read
        through the (host, time) index so the cost stays flat as the history grows."""
        a, g = schema.attempts, schema.generations
        recent = (
            sa.select(g.c.id, g.c.duration_s, g.c.aspect)
            .where(sa.or_(g.c.host == host, g.c.host.startswith(f"{host}/", autoescape=True)))
            .where(g.c.duration_s > 0, g.c.aspect.is_not(None))
            .order_by(g.c.created_at.desc())
            .limit(generations)
            .subquery()
        )
        query = (
            sa.select(
                a.c.method,
                a.c.tier,
                recent.c.aspect,
                a.c.captions,
                a.c.motion,
                a.c.peak_rss_mb,
                a.c.wall_s,
                recent.c.duration_s,
                a.c.status,
            )
            .join(recent, a.c.generation_id == recent.c.id)
            .where(a.c.status.in_(("ok", "killed")), a.c.peak_rss_mb > 0, a.c.wall_s > 0, a.c.captions.is_not(None))
        )
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(query)]

    def recent_speech_peaks(self, host: str, generations: int = 200) -> list[tuple[str, float]]:
        """(engine, peak MB) of this host's newest generations whose voice spoke in a process of
        its own (Piper): what the cost model learns the voice's need from."""
        g = schema.generations
        query = (
            sa.select(g.c.tts_engine, g.c.tts_peak_mb)
            .where(sa.or_(g.c.host == host, g.c.host.startswith(f"{host}/", autoescape=True)))
            .where(g.c.tts_peak_mb > 0)
            .order_by(g.c.created_at.desc())
            .limit(generations)
        )
        with self.engine.connect() as conn:
            return [(engine, peak) for engine, peak in conn.execute(query)]

    def generation(self, generation_id: str) -> GenerationRecord | None:
        g = schema.generations
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(g).where(g.c.id == generation_id)).first()
        return GenerationRecord.from_row(row) if row else None

    def attempts(self, generation_id: str | None = None) -> list[AttemptRecord]:
        a = schema.attempts
        query = sa.select(a).order_by(a.c.generation_id, a.c.number)
        if generation_id is not None:
            query = query.where(a.c.generation_id == generation_id)
        with self.engine.connect() as conn:
            return [AttemptRecord.from_row(row) for row in conn.execute(query)]

    def timeline(self, generation_id: str) -> list[tuple[float, float]]:
        s = schema.samples
        query = sa.select(s.c.t_s, s.c.rss_mb).where(s.c.generation_id == generation_id).order_by(s.c.seq)
        with self.engine.connect() as conn:
            return [(row.t_s, row.rss_mb) for row in conn.execute(query)]

    def running_ids(self) -> set[str]:
        g = schema.generations
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(g.c.id).where(g.c.status == "running")).scalars())

    def database_bytes(self) -> int:
        path = self.sqlite_path
        if path is not None:
            return sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar() or 0)

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """One migrating process at a time: a lock file beside SQLite, an advisory lock on PostgreSQL."""
        path = self.sqlite_path
        if path is None:
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


def _alive_since(pid: int | None, created_at: float) -> bool:
    """Is the process that wrote a row still the one running under that pid?"""
    if pid is None:
        return False
    try:
        return psutil.Process(pid).create_time() <= created_at + 1
    except psutil.Error:
        return False


def _make_engine(url: str, busy_timeout_s: float) -> Engine:
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url, connect_args={"timeout": busy_timeout_s, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:
        # WAL lets readers work beside one writer; busy_timeout makes writers wait, not fail.
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine
