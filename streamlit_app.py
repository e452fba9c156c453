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
    st.set_page_config(page_title="Quote to Speak", page_icon="🎙️")
    st.title("Quote to Speak")
    st.write("Turn a quote into a narrated video, reliably on small machines.")
else:
    from engine.http import api_routes

    app = st.App(__file__, routes=api_routes(lambda: settings))
