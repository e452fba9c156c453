"""Who a page's visitor is, for the per-visitor limits and to find their batch again after a reload."""

from __future__ import annotations

import uuid


def visitor_id() -> str:
    """The client's address when Streamlit knows it (so new tabs do not reset the count), else
    this browser session."""
    import streamlit as st  # only the pages call this

    if "visitor" not in st.session_state:
        st.session_state["visitor"] = st.context.ip_address or uuid.uuid4().hex
    return st.session_state["visitor"]
