"""History: every generation's memory, time, method and outcome, with the storage and cleanup.

Built for a long history: figures and rates are aggregated in SQL, the charts draw a uniform
sample of at most 2,000 generations, the table shows a page at a time, the CSV is streamed by
the app's /api/history.csv route, and reads are cached for a few seconds."""

import hmac
from urllib.parse import urlencode, urlsplit

import streamlit as st

from engine.app import charts, timelines
from engine.app.resources import shared_ledger, shared_store
from engine.choices import WINDOWS
from engine.errors import QuoteError
from engine.history import views
from engine.history.stats import Filters, figures
from engine.history.storage import cleanup, storage_report
from engine.settings import Settings

PAGE_ROWS = 100
CACHE_S = 5

st.title("History")
settings = Settings.from_env()
store = shared_store(settings)


# Reads cached for a few seconds, per database and filters (the store itself is not hashed).
@st.cache_data(ttl=CACHE_S, show_spinner=False)
def read_options(url: str, since: float | None) -> dict[str, list[str]]:
    return views.options(store, since)


@st.cache_data(ttl=CACHE_S, show_spinner=False)
def read_view(url: str, filters: tuple, bucket_s: float) -> dict:
    chosen = Filters(*filters)
    total = views.count(store, chosen)
    return {
        "total": total,
        "figures": figures(store, chosen),
        "sample": views.sample(store, chosen, total),
        "rates": views.rates(store, chosen, bucket_s),
        "outcomes": views.outcomes(store, chosen),
    }


@st.cache_data(ttl=CACHE_S, show_spinner=False)
def read_storage(url: str) -> dict:
    return storage_report(settings, store)


@st.cache_data(ttl=CACHE_S, show_spinner=False)
def read_page(url: str, filters: tuple, number: int) -> list:
    return views.page(store, Filters(*filters), number, PAGE_ROWS)


window = st.segmented_control("Time window", list(WINDOWS), key="h_window", default="all") or "all"
since = Filters.window(window).since
since = None if since is None else since // CACHE_S * CACHE_S  # steady for the cache's few seconds
present = read_options(store.url, since)
tier_col, method_col, status_col = st.columns(3)
tiers = tier_col.multiselect("Tier", present["tier"], key="h_tiers")
methods = method_col.multiselect("Method", present["method"], key="h_methods")
statuses = status_col.multiselect("Status", present["status"], key="h_statuses")
chosen = (since, tuple(tiers), tuple(methods), tuple(statuses))
span = WINDOWS[window]
view = read_view(store.url, chosen, 3600.0 if span is not None and span <= 2 * 86400 else 86400.0)

if not view["total"]:
    st.info("No generations in this window yet. Make one on the Generate page.")
else:
    numbers = view["figures"]
    cols = st.columns(5)
    cols[0].metric("Generations", numbers["total"])
    cols[1].metric("Success rate", "-" if numbers["success_rate"] is None else f"{numbers['success_rate']:.0%}")
    cols[2].metric("Fallback rate", "-" if numbers["fallback_rate"] is None else f"{numbers['fallback_rate']:.0%}")
    peak = numbers["peak_rss_mb"]
    cols[3].metric("Peak memory, median", "-" if peak["median"] is None else f"{peak['median']:.0f} MB")
    cols[4].metric("Peak memory, p95", "-" if peak["p95"] is None else f"{peak['p95']:.0f} MB")

    sampled = charts.generations_frame(view["sample"])
    if len(sampled) < view["total"]:
        st.caption(f"The charts of single generations draw {len(sampled):,} of {view['total']:,}, a uniform sample.")
    budget = shared_ledger(settings).capacity_mb()
    left, right = st.columns(2)
    left.plotly_chart(charts.peak_memory_figure(sampled, budget), key="peak-chart", width="stretch")
    right.plotly_chart(charts.attempt_outcomes_figure(view["outcomes"]), key="attempts-chart", width="stretch")
    left.plotly_chart(charts.fallback_rate_figure(view["rates"]), key="fallback-chart", width="stretch")
    right.plotly_chart(charts.success_rate_figure(view["rates"]), key="success-chart", width="stretch")
    left.plotly_chart(charts.memory_vs_duration_figure(sampled), key="duration-chart", width="stretch")
    right.plotly_chart(charts.time_per_second_figure(sampled), key="speed-chart", width="stretch")
    left.plotly_chart(charts.quality_figure(sampled), key="quality-chart", width="stretch")
    right.plotly_chart(charts.host_figure(sampled), key="host-chart", width="stretch")
    left.plotly_chart(charts.prediction_figure(sampled), key="prediction-chart", width="stretch")

    st.subheader("Generations")
    pages = max(1, -(-view["total"] // PAGE_ROWS))
    number = st.number_input(f"Page (of {pages:,}, newest first)", 1, pages, 1, key="h_page") - 1
    table = charts.generations_frame(read_page(store.url, chosen, number))
    st.dataframe(table, hide_index=True, width="stretch", key="h_table")
    query = urlencode({"window": window, "tier": tiers, "method": methods, "status": statuses}, doseq=True)
    here = urlsplit(st.context.url or "http://localhost:8501")
    st.link_button("Export CSV", f"{here.scheme}://{here.netloc}/api/history.csv?{query}", icon="⬇️")

    st.subheader("One generation")
    labels = {
        row.id: f"{row.created:%Y-%m-%d %H:%M:%S} · {row.status} · {row.method or '-'} at {row.tier or '-'} · "
        f"{row.peak_rss_mb or 0:.0f} MB"
        for row in table.itertuples()
    }
    picked = st.selectbox("Generation (from this page of the table)", list(labels), format_func=labels.get,
                          key="h_generation")  # fmt: skip
    if picked:
        points = store.timeline(picked)
        if points:
            st.plotly_chart(
                timelines.timeline_figure(points, store.attempts(picked)), key="timeline-chart", width="stretch"
            )
        else:
            st.caption("No memory timeline: this generation stopped before rendering.")

st.subheader("Storage and memory now")
report = read_storage(store.url)
cols = st.columns(5)
cols[0].metric("Outputs", f"{report['outputs']['count']} · {report['outputs']['bytes'] / 1e6:.1f} MB")
cols[1].metric("Temp", f"{report['temp']['count']} · {report['temp']['bytes'] / 1e6:.1f} MB")
cols[2].metric("Database", f"{report['database_bytes'] / 1e6:.2f} MB")
cols[3].metric("Disk free", f"{report['disk_free_bytes'] / 1e9:.1f} GB")
cols[4].metric("Memory available", f"{report['memory']['available_mb']:,.0f} MB")

if not settings.admin_token:
    # The same rule as POST /api/cleanup: admin actions are off on a demo with no token set.
    st.caption("Cleanup is an admin action: set ADMIN_TOKEN to enable it here and at POST /api/cleanup.")
else:
    with st.form("cleanup", border=True):
        st.markdown("**Cleanup**: remove outputs older than N days (and beyond `MAX_STORAGE_MB`); history rows stay.")
        days = st.number_input("Older than (days)", min_value=0.0, value=7.0, step=1.0, key="h_days")
        token = st.text_input("Admin token", type="password", key="h_token")
        if st.form_submit_button("Clean up"):
            if not hmac.compare_digest(token.encode(), settings.admin_token.encode()):
                st.error("The admin token is wrong; cleanup did nothing.")
            else:
                try:
                    done = cleanup(settings, store, older_than_days=days)
                    st.cache_data.clear()  # the figures and storage shown were from before
                except (QuoteError, OSError) as exc:
                    st.error(f"Cleanup failed: {exc}")
                else:
                    st.success(
                        f"Removed {done.removed_outputs} outputs ({done.removed_bytes / 1e6:.1f} MB), "
                        f"swept {done.swept_temp} temp folders."
                    )
