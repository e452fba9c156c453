"""Tables and Plotly figures of the history, for the dashboard's history page (pandas and Plotly
Express: 36 MB and 0.2 s to import, so the Generate page does not; its figure is in `timelines`)."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from engine.app.timelines import BUDGET, LAYOUT, reference_lines
from engine.choices import TIERS
from engine.history import GenerationRecord
from engine.memory.plan import margin_mb

DERIVED = ("created", "s_per_video_s")  # computed from the record for the table and the charts
COLUMNS = [
    "created", "status", "tier", "method", "fell_back", "peak_rss_mb", "predicted_peak_mb", "budget_mb",
    "available_mb", "wall_s", "duration_s",
    "s_per_video_s", "ssim", "psnr_db", "width", "height", "video_kbps", "audio_kbps", "size_bytes", "tts_engine",
    "text_chars",
    "aspect", "tier_asked", "tier_policy", "seed_tier", "prediction_source", "method_asked", "tier_reason",
    "error_kind", "error", "host", "delivery", "job_id", "id",
]  # fmt: skip


def generations_frame(records: list[GenerationRecord]) -> pd.DataFrame:
    """One row per finished or running generation, newest first, with derived columns."""
    if not records:
        return pd.DataFrame(columns=COLUMNS)
    df = pd.DataFrame([vars(r) for r in records])  # vars, not asdict: no deep copy of every row
    df["created"] = pd.to_datetime(df["created_at"], unit="s", utc=True)
    df["s_per_video_s"] = (df["wall_s"] / df["duration_s"]).where(df["duration_s"] > 0).round(3)
    df["fell_back"] = df["fell_back"].fillna(False).astype(bool)
    return df[COLUMNS].sort_values("created", ascending=False, ignore_index=True)


def peak_memory_figure(df: pd.DataFrame, budget_mb: float | None) -> go.Figure:
    rendered = df[df["peak_rss_mb"].fillna(0) > 0]
    fig = px.scatter(
        rendered, x="created", y="peak_rss_mb", color=rendered["method"].fillna("none"),
        symbol=rendered["tier"].fillna("none"), hover_data=["id", "status", "duration_s", "wall_s"],
        labels={"created": "", "peak_rss_mb": "peak memory of the render tree (MB)", "color": "method"},
        title="Peak memory per generation",
    )  # fmt: skip
    lines = [(budget_mb, "render budget now", BUDGET)] if budget_mb else []
    return reference_lines(fig, rendered["peak_rss_mb"].max() if not rendered.empty else 0, lines)


def prediction_figure(df: pd.DataFrame) -> go.Figure:
    """Each generation's peak against what the cost model predicted for its tier's first method:
    points above the dotted line went over their prediction plus its reservation margin."""
    rated = df[(df["predicted_peak_mb"].fillna(0) > 0) & (df["peak_rss_mb"].fillna(0) > 0)]
    fig = px.scatter(rated, x="predicted_peak_mb", y="peak_rss_mb", color=rated["method"].fillna("none"),
                     symbol=rated["tier"].fillna("none"), hover_data=["id", "prediction_source", "aspect"],
                     title="Peak memory: predicted against actual",
                     labels={"predicted_peak_mb": "predicted p95 peak (MB)", "peak_rss_mb": "actual peak (MB)",
                             "color": "method"})  # fmt: skip
    top = float(max(rated["predicted_peak_mb"].max(), rated["peak_rss_mb"].max())) if not rated.empty else 100.0
    fig.add_scatter(x=[0, top], y=[0, top], mode="lines", name="as predicted", line=dict(color="#888"))
    fig.add_scatter(x=[0, top], y=[0, top + margin_mb(top)], mode="lines", name="predicted + margin",
                    line={"dash": "dot", "color": "#e45756"})  # fmt: skip
    return fig.update_layout(yaxis_rangemode="tozero", xaxis_rangemode="tozero", **LAYOUT)


def attempt_outcomes_figure(outcomes: list[tuple[str, str, int]]) -> go.Figure:
    """How each method's attempts ended: the fallbacks by method (counted in SQL)."""
    counts = pd.DataFrame(outcomes, columns=["method", "status", "attempts"])
    fig = px.bar(counts, x="method", y="attempts", color="status", title="Attempts by method and outcome")
    return fig.update_layout(**LAYOUT)


def fallback_rate_figure(rates: list[tuple[float, int, int, int]]) -> go.Figure:
    """Share of outputs that came from a fallback, per hour or day (aggregated in SQL)."""
    frame = _rates_frame(rates)
    frame = frame[frame["succeeded"] > 0]
    frame["fell_back"] = frame["from_fallback"] / frame["succeeded"]
    fig = px.line(frame, x="created", y="fell_back", markers=True, title="Fallback rate over time",
                  labels={"created": "", "fell_back": "share of outputs from a fallback"})  # fmt: skip
    return fig.update_layout(yaxis_tickformat=".0%", yaxis_range=[0, 1.05], **LAYOUT)


def success_rate_figure(rates: list[tuple[float, int, int, int]]) -> go.Figure:
    """Succeeded over accepted, per hour or day (aggregated in SQL)."""
    frame = _rates_frame(rates)
    frame = frame[frame["accepted"] > 0]
    frame["success"] = frame["succeeded"] / frame["accepted"]
    fig = px.line(frame, x="created", y="success", markers=True, title="Success rate over time",
                  labels={"created": "", "success": "succeeded / accepted"})  # fmt: skip
    return fig.update_layout(yaxis_tickformat=".0%", yaxis_range=[0, 1.05], **LAYOUT)


def _rates_frame(rates: list[tuple[float, int, int, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rates, columns=["start", "accepted", "succeeded", "from_fallback"])
    frame["created"] = pd.to_datetime(frame["start"], unit="s", utc=True)
    return frame


def memory_vs_duration_figure(df: pd.DataFrame) -> go.Figure:
    done = df[(df["status"] == "ok") & (df["duration_s"].fillna(0) > 0)]
    fig = px.scatter(done, x="duration_s", y="peak_rss_mb", color="method", symbol="tier", hover_data=["id"],
                     title="Peak memory against video duration",
                     labels={"duration_s": "video duration (s)", "peak_rss_mb": "peak memory (MB)"})  # fmt: skip
    return fig.update_layout(**LAYOUT)


def time_per_second_figure(df: pd.DataFrame) -> go.Figure:
    done = df[df["s_per_video_s"].notna()]
    fig = px.box(done, x="method", y="s_per_video_s", color="tier", points="all",
                 title="Render time per second of video",
                 labels={"s_per_video_s": "wall seconds per video second"})  # fmt: skip
    return fig.update_layout(**LAYOUT)


def quality_figure(df: pd.DataFrame) -> go.Figure:
    """SSIM of each video's frame against its card, per tier: what the memory savings cost the picture."""
    rated = df[df["ssim"].notna()]
    fig = px.box(rated, x="tier", y="ssim", color="method", points="all", title="Picture quality by tier",
                 labels={"ssim": "SSIM against the card (1 = identical)"},
                 category_orders={"tier": [*TIERS, "emergency"]})  # fmt: skip
    return fig.update_layout(**LAYOUT)


def host_figure(df: pd.DataFrame) -> go.Figure:
    """Peak memory per generation on each host (or worker): which machine ran what, at what cost."""
    rendered = df[df["peak_rss_mb"].fillna(0) > 0]
    fig = px.box(rendered, x=rendered["host"].fillna("unknown"), y="peak_rss_mb", color="method", points="all",
                 title="Peak memory per generation by host", hover_data=["id", "tier"],
                 labels={"x": "host (worker)", "peak_rss_mb": "peak memory (MB)"})  # fmt: skip
    return fig.update_layout(**LAYOUT)
