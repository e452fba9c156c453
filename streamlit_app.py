"""Quote to Speak dashboard.

`streamlit run streamlit_app.py` imports this module to serve it (the `app` below: the
pages plus the /api routes), then runs it as `__main__` for every visitor's session.
"""

import sys

import streamlit as st

from engine.errors import ConfigError
from engine.settings import Settings

try:
    settings = Settings.from_env()
except ConfigError as exc:
    if __name__ == "__main__":
        st.error(f"Configuration error: {exc}")
        st.stop()
    sys.exit(f"error: {exc}")  # a bad setting stops start-up with the sentence, not a traceback

if __name__ == "__main__":
    from engine.app.resources import shared_ledger
    from engine.memory.reading import read_memory

    st.set_page_config(page_title="Quote to Speak", page_icon=":material/mic:", layout="wide")
    navigation = st.navigation(
        [
            st.Page("pages/generate.py", title="Generate", icon=":material/mic:", default=True),
            st.Page("pages/batch.py", title="Batch", icon=":material/playlist_play:", url_path="batch"),
            st.Page("pages/history.py", title="History", icon=":material/monitoring:", url_path="history"),
        ]
    )

    @st.fragment(run_every=3)
    def memory_now() -> None:
        reading = read_memory(settings.max_memory_mb)
        st.metric("Available", f"{reading.available_mb:,.0f} MB", help=f"bound by {reading.bound_by}")
        st.metric("App (process tree)", f"{reading.app_rss_mb:,.0f} MB")
        limit = reading.container_limit_mb
        st.metric("Container limit", f"{limit:,.0f} MB" if limit else "none")
        ledger = shared_ledger(settings)
        renders = ledger.view()
        st.metric("Render budget", f"{ledger.capacity_mb():,.0f} MB", help="what one render could hold if none ran")
        st.metric("Renders on this host", f"{renders.running} running, {renders.waiting} waiting")

    with st.sidebar:
        st.subheader("Memory now")
        memory_now()
    navigation.run()
else:
    from engine.app.resources import start_up
    from engine.app.routes import api_routes

    start_up(settings)  # the server starts: tidy up after any earlier crash, once
    app = st.App(__file__, routes=api_routes(lambda: settings))
