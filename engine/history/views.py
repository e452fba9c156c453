"""What the history page reads, in amounts that stay small however long the history grows: a page
of rows, a uniform sample for the charts, rates aggregated per hour or day, attempt outcomes
counted in SQL, and the CSV export streamed in chunks. The figures come from `stats.figures`."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import fields

import sqlalchemy as sa

from engine.history import GenerationRecord, HistoryStore, schema
from engine.history.stats import REFUSALS, Filters

CHART_POINTS = 2000  # the most generations a chart draws (a uniform sample beyond that)
EXPORT_CHUNK = 2000


def count(store: HistoryStore, filters: Filters) -> int:
    g = schema.generations
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(g).where(*filters.where())).scalar() or 0)


def page(store: HistoryStore, filters: Filters, number: int, size: int = 100) -> list[GenerationRecord]:
    """The `number`th page (from 0) of rows, newest first."""
    g = schema.generations
    query = sa.select(g).where(*filters.where()).order_by(g.c.created_at.desc()).offset(number * size).limit(size)
    with store.engine.connect() as conn:
        return [GenerationRecord.from_row(row) for row in conn.execute(query)]


def sample(store: HistoryStore, filters: Filters, total: int, points: int = CHART_POINTS) -> list[GenerationRecord]:
    """At most about `points` rows, spread evenly over the matching ones: ids are random hex, so
    the ids below a cut-off are a uniform sample, read through the primary key."""
    g = schema.generations
    query = sa.select(g).where(*filters.where())
    if total > points:
        query = query.where(g.c.id < _cut(points / total))
    with store.engine.connect() as conn:
        rows = [GenerationRecord.from_row(row) for row in conn.execute(query)]
    return sorted(rows, key=lambda row: row.created_at)  # sorted here: ordering in SQL would read every row


def _cut(share: float) -> str:
    """The hex id below which `share` of random 32-digit hex ids fall."""
    return f"{min(0xFFFFFFFF, int(share * 0x100000000)):08x}"


def rates(store: HistoryStore, filters: Filters, bucket_s: float) -> list[tuple[float, int, int, int]]:
    """Per time bucket: (start, accepted, succeeded, succeeded from a fallback); refusals and
    running rows are not accepted work."""
    g = schema.generations
    bucket = sa.cast(g.c.created_at / bucket_s, sa.Integer)
    ok = sa.case((g.c.status == "ok", 1), else_=0)
    from_fallback = sa.case((sa.and_(g.c.status == "ok", g.c.fell_back), 1), else_=0)
    accepted = sa.or_(g.c.error_kind.is_(None), g.c.error_kind.not_in(REFUSALS))
    query = (
        sa.select(bucket, sa.func.count(), sa.func.sum(ok), sa.func.sum(from_fallback))
        .where(*filters.where(), g.c.status != "running", accepted)
        .group_by(bucket)
        .order_by(bucket)
    )
    with store.engine.connect() as conn:
        return [(int(b) * bucket_s, int(n), int(s or 0), int(f or 0)) for b, n, s, f in conn.execute(query)]


def outcomes(store: HistoryStore, filters: Filters) -> list[tuple[str, str, int]]:
    """How the attempts of the matching generations ended: (method, status, count)."""
    a, g = schema.attempts, schema.generations
    query = sa.select(a.c.method, a.c.status, sa.func.count()).group_by(a.c.method, a.c.status)
    if filters.where():  # every generation: no need to look at them
        query = query.where(a.c.generation_id.in_(sa.select(g.c.id).where(*filters.where()).scalar_subquery()))
    with store.engine.connect() as conn:
        return [(method, status, int(n)) for method, status, n in conn.execute(query)]


def options(store: HistoryStore, since: float | None) -> dict[str, list[str]]:
    """The tiers, methods and statuses present in a window, for the filters."""
    g = schema.generations
    query = sa.select(g.c.tier, g.c.method, g.c.status).distinct().where(*Filters(since).where())
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return {
        "tier": sorted({r.tier for r in rows if r.tier}),
        "method": sorted({r.method for r in rows if r.method}),
        "status": sorted({r.status for r in rows if r.status}),
    }


def export_csv(store: HistoryStore, filters: Filters) -> Iterator[str]:
    """The matching generations as CSV (a header, then a line a row, newest first), a chunk at a time."""
    g = schema.generations
    names = [f.name for f in fields(GenerationRecord)]
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(names)
    yield flush()
    query = sa.select(*(g.c[name] for name in names)).where(*filters.where()).order_by(g.c.created_at.desc())
    with store.engine.connect() as conn:
        result = conn.execution_options(yield_per=EXPORT_CHUNK).execute(query)
        for rows in result.partitions():
            writer.writerows(rows)
            yield flush()
