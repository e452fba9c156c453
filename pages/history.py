"""History: every generation's memory, time, method and outcome, with the storage and cleanup."""

import time

import streamlit as st

from engine.app import charts
from engine.app.resources import shared_ledger, shared_store
from engine.choices import WINDOWS
from engine.errors import QuoteError
from engine.history.stats import summary
from engine.history.storage import cleanup, storage_report
from engine.settings import Settings

st.title("History")
settings = Settings.from_env()
store = shared_store(settings)

window = st.segmented_control("Time window", list(WINDOWS), key="h_window", default="all") or "all"
span = WINDOWS[window]
records = store.generations(since=None if span is None else time.time() - span)
frame = charts.generations_frame(records)

tier_col, method_col, status_col = st.columns(3)
tiers = tier_col.multiselect("Tier", sorted(frame["tier"].dropna().unique()), key="h_tiers")
methods = method_col.multiselect("Method", sorted(frame["method"].dropna().unique()), key="h_methods")
statuses = status_col.multiselect("Status", sorted(frame["status"].dropna().unique()), key="h_statuses")
view = charts.filter_frame(frame, tiers, methods, statuses)
shown = [r for r in records if r.id in set(view["id"])]

if not shown:
    st.info("No generations in this window yet. Make one on the Generate page.")
else:
    figures = summary(shown)
    cols = st.columns(5)
    cols[0].metric("Generations", figures["total"])
    cols[1].metric("Success rate", "-" if figures["success_rate"] is None else f"{figures['success_rate']:.0%}")
    cols[2].metric("Fallback rate", "-" if figures["fallback_rate"] is None else f"{figures['fallback_rate']:.0%}")
    peak = figures["peak_rss_mb"]
    cols[3].metric("Peak memory, median", "-" if peak["median"] is None else f"{peak['median']:.0f} MB")
    cols[4].metric("Peak memory, p95", "-" if peak["p95"] is None else f"{peak['p95']:.0f} MB")

    attempts = charts.attempts_frame([a for a in store.attempts() if a.generation_id in set(view["id"])])
    budget = shared_ledger(settings).capacity_mb()
    left, right = st.columns(2)
    left.plotly_chart(charts.peak_memory_figure(view, budget), key="peak-chart", width="stretch")
    right.plotly_chart(charts.attempt_outcomes_figure(attempts), key="attempts-chart", width="stretch")
    left.plotly_chart(charts.fallback_rate_figure(view), key="fallback-chart", width="stretch")
    right.plotly_chart(charts.success_rate_figure(view), key="success-chart", width="stretch")
    left.plotly_chart(charts.memory_vs_duration_figure(view), key="duration-chart", width="stretch")
    right.plotly_chart(charts.time_per_second_figure(view), key="speed-chart", width="stretch")
    left.plotly_chart(charts.quality_figure(view), key="quality-chart", width="stretch")
    right.plotly_chart(charts.host_figure(view), key="host-chart", width="stretch")
    left.plotly_chart(charts.prediction_figure(view), key="prediction-chart", width="stretch")

    st.subheader("One generation")
    labels = {
        row.id: f"{row.created:%Y-%m-%d %H:%M:%S} · {row.status} · {row.method or '-'} at {row.tier or '-'} · "
        f"{row.peak_rss_mb or 0:.0f} MB"
        for row in view.itertuples()
    }
    chosen = st.selectbox("Generation", list(labels), format_func=labels.get, key="h_generation")
    if chosen:
        points = store.timeline(chosen)
        if points:
            st.plotly_chart(
                charts.timeline_figure(points, store.attempts(chosen)), key="timeline-chart", width="stretch"
            )
        else:
            st.caption("No memory timeline: this generation stopped before rendering.")

    st.subheader("Generations")
    st.dataframe(view, hide_index=True, width="stretch", key="h_table")
    st.download_button(
        "Export CSV", view.to_csv(index=False), file_name="quote-to-speak-history.csv", mime="text/csv", key="h_csv"
    )

st.subheader("Storage and memory now")
report = storage_report(settings, store)
cols = st.columns(5)
cols[0].metric("Outputs", f"{report['outputs']['count']} · {report['outputs']['bytes'] / 1e6:.1f} MB")
cols[1].metric("Temp", f"{report['temp']['count']} · {report['temp']['bytes'] / 1e6:.1f} MB")
cols[2].metric("Database", f"{report['database_bytes'] / 1e6:.2f} MB")
cols[3].metric("Disk free", f"{report['disk_free_bytes'] / 1e9:.1f} GB")
cols[4].metric("Memory available", f"{report['memory']['available_mb']:,.0f} MB")

with st.form("cleanup", border=True):
    st.markdown("**Cleanup**: remove outputs older than N days (and beyond `MAX_STORAGE_MB`); history rows stay.")
    days = st.number_input("Older than (days)", min_value=0.0, value=7.0, step=1.0, key="h_days")
    token = st.text_input("Admin token", type="password", key="h_token") if settings.admin_token else None
    if st.form_submit_button("Clean up"):
        if settings.admin_token and token != settings.admin_token:
            st.error("The admin token is wrong; cleanup did nothing.")
        else:
            try:
                done = cleanup(settings, store, older_than_days=days)
            except (QuoteError, OSError) as exc:
                st.error(f"Cleanup failed: {exc}")
            else:
                st.success(
                    f"Removed {done.removed_outputs} outputs ({done.removed_bytes / 1e6:.1f} MB), "
                    f"swept {done.swept_temp} temp folders."
                )
