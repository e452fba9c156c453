"""The tables as they are now (the latest migration), for queries and writes.

Times are seconds since the epoch (UTC) in floating point: portable, and what the
charts want. `stage_s` is a JSON object of stage name to seconds.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

generations = sa.Table(
    "generations",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),  # running, ok, error, interrupted
    sa.Column("error", sa.Text),
    sa.Column("text_chars", sa.Integer, nullable=False),
    sa.Column("lang", sa.String(32)),
    sa.Column("tts_engine", sa.String(16)),
    sa.Column("tier_asked", sa.String(16)),
    sa.Column("tier", sa.String(16)),
    sa.Column("tier_reason", sa.Text),
    sa.Column("method", sa.String(16)),
    sa.Column("peak_rss_mb", sa.Float),
    sa.Column("available_mb", sa.Float),
    sa.Column("wall_s", sa.Float),
    sa.Column("duration_s", sa.Float),
    sa.Column("width", sa.Integer),
    sa.Column("height", sa.Integer),
    sa.Column("video_kbps", sa.Integer),
    sa.Column("audio_kbps", sa.Integer),
    sa.Column("size_bytes", sa.BigInteger),
    sa.Column("output_path", sa.Text),
    # version 2
    sa.Column("finished_at", sa.Float),
    sa.Column("error_kind", sa.String(32)),
    sa.Column("tts_fallback_reason", sa.Text),
    sa.Column("method_asked", sa.String(16)),
    sa.Column("fell_back", sa.Boolean),
    sa.Column("app_rss_mb", sa.Float),
    sa.Column("stage_s", sa.Text),
    sa.Column("file_removed", sa.Boolean),
    sa.Column("host", sa.String(255)),
    sa.Column("pid", sa.Integer),
    # version 3
    sa.Column("ssim", sa.Float),
    sa.Column("psnr_db", sa.Float),
    # version 4
    sa.Column("job_id", sa.String(64), index=True),
    sa.Column("delivery", sa.Integer),
    # version 5
    sa.Column("tier_policy", sa.String(16)),
    sa.Column("seed_tier", sa.String(16)),
    sa.Column("aspect", sa.String(8)),
    sa.Column("captions", sa.Boolean),
    sa.Column("motion", sa.Boolean),
    sa.Column("budget_mb", sa.Float),
    sa.Column("predicted_peak_mb", sa.Float),
    sa.Column("predicted_wall_s", sa.Float),
    sa.Column("prediction_source", sa.String(16)),
    # version 7
    sa.Column("tts_peak_mb", sa.Float),
    sa.Column("speed", sa.String(8)),
    sa.Column("loudness_lufs", sa.Float),
    sa.Column("true_peak_dbtp", sa.Float),
    # version 8
    sa.Column("preset", sa.String(16)),
    sa.Column("caption_style", sa.String(8)),
    sa.Column("music", sa.String(16)),
    sa.Column("fps", sa.Integer),
    # version 9
    sa.Column("process", sa.String(96)),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("generation_id", sa.String(32), sa.ForeignKey("generations.id"), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("tier", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("peak_rss_mb", sa.Float),
    sa.Column("wall_s", sa.Float),
    # version 2
    sa.Column("budget_mb", sa.Float),
    # version 5
    sa.Column("captions", sa.Boolean),
    sa.Column("motion", sa.Boolean),
    sa.Column("predicted_peak_mb", sa.Float),
)

samples = sa.Table(  # version 2
    "samples",
    metadata,
    sa.Column("generation_id", sa.String(32), sa.ForeignKey("generations.id"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("t_s", sa.Float, nullable=False),
    sa.Column("rss_mb", sa.Float, nullable=False),
)
