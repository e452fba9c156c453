"""Quote to Speak dashboard (the generate and history pages come in their own issue)."""

import streamlit as st

from engine.settings import Settings

st.set_page_config(page_title="Quote to Speak", page_icon="🎙️")
settings = Settings.from_env()
st.title("Quote to Speak")
st.write("Turn a quote into a narrated video, reliably on small machines.")
