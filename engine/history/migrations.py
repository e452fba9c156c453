"""Schema versions, applied in order; the version is kept in the `meta` table.

Each step is frozen once released: it says what that version added, in DDL that
SQLite and PostgreSQL both take. A new database runs every step from the first.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.history import schema


def _v1(conn: Connection) -> None:
    """The first schema: generations and their attempts."""
    v1 = sa.MetaData()
    later_columns = {
        "finished_at", "error_kind", "tts_fallback_reason", "method_asked", "fell_back", "app_rss_mb",
        "stage_s", "file_removed", "host", "pid", "budget_mb", "ssim", "psnr_db", "job_id", "delivery",
        *V5_GENERATIONS, *V5_ATTEMPTS, *V7_GENERATIONS, *V8_GENERATIONS, *V9_GENERATIONS,
    }  # fmt: skip
    for table in (schema.meta, schema.generations, schema.attempts):
        sa.Table(table.name, v1, *(c._copy() for c in table.columns if c.name not in later_columns))
    v1.create_all(conn)


def _v2(conn: Connection) -> None:
    """Version 2: finish time, error kind, host and pid (for interrupted runs), stage times,
    the watchdog budget of each attempt, and the memory timeline of each generation."""
    added = {
        "generations": ["finished_at", "error_kind", "tts_fallback_reason", "method_asked", "fell_back",
                        "app_rss_mb", "stage_s", "file_removed", "host", "pid"],
        "attempts": ["budget_mb"],
    }  # fmt: skip
    _add_columns(conn, added)
    schema.samples.create(conn)
    conn.execute(sa.text("UPDATE generations SET file_removed = :no, fell_back = :no"), {"no": False})


def _v3(conn: Connection) -> None:
    """Version 3: picture quality (SSIM, PSNR) of each generation's video against its card."""
    _add_columns(conn, {"generations": ["ssim", "psnr_db"]})


def _add_columns(conn: Connection, added: dict[str, list[str]]) -> None:
    for table_name, names in added.items():
        table = schema.metadata.tables[table_name]
        for name in names:
            kind = table.c[name].type.compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE {table_name} ADD COLUMN {name} {kind}"))


def _v4(conn: Connection) -> None:
    """Version 4: the queued job a worker ran a generation for, and which delivery it was,
    so a worker that takes over a lost worker's job can mark the lost run on any host."""
    _add_columns(conn, {"generations": ["job_id", "delivery"]})
    conn.execute(sa.text("CREATE INDEX ix_generations_job_id ON generations (job_id)"))


V5_GENERATIONS = ["tier_policy", "seed_tier", "aspect", "captions", "motion", "budget_mb", "predicted_peak_mb",
                  "predicted_wall_s", "prediction_source"]  # fmt: skip
V5_ATTEMPTS = ["captions", "motion", "predicted_peak_mb"]


def _v5(conn: Connection) -> None:
    """Version 5: what the cost model needs to learn a cell from history (aspect, captions and
    motion of each attempt), and what planned the generation (policy, what the seed would
    have chosen, the render budget, the predicted peak and time and where they came from)."""
    _add_columns(conn, {"generations": V5_GENERATIONS, "attempts": V5_ATTEMPTS})
    conn.execute(sa.text("CREATE INDEX ix_generations_host_created ON generations (host, created_at)"))


def _v6(conn: Connection) -> None:
    """Version 6: an index that holds everything the figures read (the grouping columns, the time,
    and each row's peak and speed), so they are read at 100,000 generations without the rows."""
    columns = "tier, method, status, error_kind, fell_back, created_at, peak_rss_mb, wall_s, duration_s"
    conn.execute(sa.text(f"CREATE INDEX ix_generations_figures ON generations ({columns})"))


V7_GENERATIONS = ["tts_peak_mb", "speed", "loudness_lufs", "true_peak_dbtp"]


def _v7(conn: Connection) -> None:
    """Version 7: the voice's own peak (Piper speaks in a process of its own, which the cost model
    learns from), the speaking rate, and the loudness the speech was mastered to."""
    _add_columns(conn, {"generations": V7_GENERATIONS})


V8_GENERATIONS = ["preset", "caption_style", "music", "fps"]


def _v8(conn: Connection) -> None:
    """Version 8: what a shared video was asked to be: the platform preset, the caption style, the
    music under the voice, and the frame rate."""
    _add_columns(conn, {"generations": V8_GENERATIONS})


V9_GENERATIONS = ["process"]


def _v9(conn: Connection) -> None:
    """Version 9: the writing process named by the kernel (boot, PID namespace, start in clock ticks
    since boot), so a start-up tells a live writer from a gone one whatever the wall clock did."""
    _add_columns(conn, {"generations": V9_GENERATIONS})


MIGRATIONS: list[Callable[[Connection], None]] = [_v1, _v2, _v3, _v4, _v5, _v6, _v7, _v8, _v9]
LATEST = len(MIGRATIONS)


def current_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table("meta"):
        return 0
    value = conn.execute(sa.select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).scalar()
    return int(value) if value else 0


def migrate(conn: Connection) -> int:
    """Bring the schema to the latest version inside the caller's transaction; the new version."""
    version = current_version(conn)
    for step in MIGRATIONS[version:]:
        step(conn)
        version += 1
        conn.execute(sa.delete(schema.meta).where(schema.meta.c.key == "schema_version"))
        conn.execute(sa.insert(schema.meta).values(key="schema_version", value=str(version)))
    return version


def main(argv: list[str]) -> int:
    """`python -m engine.history.migrations URL`: bring the database at URL to the latest schema
    (how the app and the command line migrate without loading SQLAlchemy themselves)."""
    from engine.errors import HistoryUnavailable
    from engine.history.store import HistoryStore

    try:
        HistoryStore(argv[1]).close()
    except HistoryUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
