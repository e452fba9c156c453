"""Memory over time, in figures that need no pandas: the live chart of a running generation (the
Generate page draws it), a past generation's timeline, and the style every figure shares."""

from __future__ import annotations

import plotly.graph_objects as go

from engine.history import AttemptRecord

BUDGET = dict(line_dash="dash", line_color="#e45756")
LAYOUT = dict(height=340, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.2))


def timeline_figure(points: list[tuple[float, float]], attempts: list[AttemptRecord]) -> go.Figure:
    fig = go.Figure(go.Scatter(x=[t for t, _ in points], y=[r for _, r in points], mode="lines", name="render tree"))
    fig.update_layout(title="Memory timeline of the generation", xaxis_title="seconds since start",
                      yaxis_title="RSS of the render tree (MB)", **LAYOUT)  # fmt: skip
    lines = [(a.budget_mb, f"{a.method} budget ({a.status})", BUDGET) for a in attempts if a.budget_mb]
    return reference_lines(fig, max((r for _, r in points), default=0), lines)


def live_figure(samples, budget_mb: float | None) -> go.Figure:
    """The render tree's memory while a generation runs, one trace per attempt's method."""
    fig = go.Figure()
    methods = list(dict.fromkeys(s.method for s in samples))
    for method in methods:
        mine = [s for s in samples if s.method == method]
        fig.add_trace(go.Scatter(x=[s.t_s for s in mine], y=[s.rss_mb for s in mine], mode="lines", name=method))
    fig.update_layout(xaxis_title="seconds", yaxis_title="render tree RSS (MB)", **{**LAYOUT, "height": 260})
    top = max((s.rss_mb for s in samples), default=0)
    return reference_lines(fig, top, [(budget_mb, "budget", BUDGET)] if budget_mb else [])


def reference_lines(fig: go.Figure, top: float, lines: list[tuple[float, str, dict]]) -> go.Figure:
    """Horizontal lines for budgets and thresholds. One far above every point (a 20 GB budget
    over 80 MB peaks) would flatten the data, so it is named under the title instead."""
    off_chart = []
    for mb, name, style in lines:
        if top and mb > 4 * top:
            off_chart.append(f"{name} {mb:,.0f} MB")
        else:
            fig.add_hline(y=mb, annotation_text=f"{name} {mb:,.0f} MB", **style)
    if off_chart:
        title = fig.layout.title.text or ""
        fig.update_layout(title_text=f"{title}<br><sup>off the chart: {'; '.join(off_chart)}</sup>")
    return fig.update_layout(yaxis_rangemode="tozero")
