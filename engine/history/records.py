"""Rows of the history as value objects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class GenerationRecord:
    id: str
    created_at: float
    status: str  # running, ok, error, interrupted
    text_chars: int
    error: str | None = None
    error_kind: str | None = None  # invalid_input, not_enough_memory, speech_failed, render_failed, ...
    lang: str | None = None
    tts_engine: str | None = None
    tts_fallback_reason: str | None = None
    tier_asked: str | None = None
    tier: str | None = None
    tier_reason: str | None = None
    method_asked: str | None = None
    method: str | None = None
    fell_back: bool | None = None
    peak_rss_mb: float | None = None
    available_mb: float | None = None
    app_rss_mb: float | None = None
    wall_s: float | None = None
    stage_s: str | None = None  # JSON
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    video_kbps: int | None = None
    audio_kbps: int | None = None
    size_bytes: int | None = None
    output_path: str | None = None
    file_removed: bool | None = None
    finished_at: float | None = None
    host: str | None = None
    pid: int | None = None
    ssim: float | None = None
    psnr_db: float | None = None
    job_id: str | None = None  # the queued job, on a worker; None in-process
    delivery: int | None = None  # 2: a worker was lost mid-job and this one took it over
    tier_policy: str | None = None
    seed_tier: str | None = None
    aspect: str | None = None
    captions: bool | None = None
    motion: bool | None = None
    budget_mb: float | None = None
    predicted_peak_mb: float | None = None
    predicted_wall_s: float | None = None
    prediction_source: str | None = None
    tts_peak_mb: float | None = None
    speed: str | None = None
    loudness_lufs: float | None = None
    true_peak_dbtp: float | None = None
    preset: str | None = None
    caption_style: str | None = None
    music: str | None = None
    fps: int | None = None
    process: str | None = None  # the writer as the kernel names it (engine.memory.processes.identity)

    @classmethod
    def from_row(cls, row) -> GenerationRecord:
        """From a row of SQLAlchemy's, or a mapping of column to value."""
        return cls(**_typed(cls, getattr(row, "_mapping", row)))


@dataclass(frozen=True)
class AttemptRecord:
    generation_id: str
    number: int
    method: str
    tier: str
    status: str
    error: str | None
    peak_rss_mb: float | None
    wall_s: float | None
    budget_mb: float | None = None
    captions: bool | None = None
    motion: bool | None = None
    predicted_peak_mb: float | None = None

    @classmethod
    def from_row(cls, row) -> AttemptRecord:
        """From a row of SQLAlchemy's, or a mapping of column to value."""
        return cls(**_typed(cls, getattr(row, "_mapping", row)))


def _typed(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """The columns that are fields of `cls`; flags as booleans (SQLite keeps them as 0 and 1)."""
    return {
        f.name: bool(data[f.name]) if data[f.name] is not None and str(f.type).startswith("bool") else data[f.name]
        for f in fields(cls)
        if f.name in data
    }
