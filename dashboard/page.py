"""What every page runs inside: app.py's navigation, the access gate and the store guard (:func:`page`).

Importing this module puts any page that Streamlit ran on its own back under app.py (see
:func:`_run_pages_through_the_app`); every page imports it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import streamlit as st

from cartpole_core.runs.home import DataHomeError
from cartpole_core.runs.store import StoreError
from dashboard import access
from dashboard.labels import plain


def _run_pages_through_the_app() -> None:
    """Every page runs inside app.py's navigation (its sections, the wide layout, the sidebar).

    Streamlit treats a ``pages/`` folder beside the entry point as a legacy multipage app until ``st.navigation``
    has been called once in the server process. So the first request after a server start that names a page — a
    reload of ``/live?run=…`` — ran that page alone: raw file names in the sidebar, a narrow layout, and the same
    for every later session until someone opened the root URL. Leave that mode (as ``st.navigation`` itself does)
    and rerun, which now goes through app.py; the URL and its query parameters are kept.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


_run_pages_through_the_app()


def require_access() -> None:
    """With the access gate on (a server others can reach, :mod:`dashboard.access`), nothing draws until this
    session has given the token. Called by app.py and again by each page (:func:`page`), which Streamlit may run
    alone."""
    if not access.gated() or st.session_state.get("_signed_in"):
        return
    st.title("CartPole Lab")
    with st.form("sign_in"):
        given = st.text_input("Access token", type="password",
                              help=f"This lab is shared: the person who started it set {access.TOKEN_ENV}.")
        if st.form_submit_button("Sign in", type="primary"):
            if access.session_allowed(given):
                st.session_state["_signed_in"] = True
                st.rerun()
            st.error("That is not this lab's access token.", icon=":material/lock:")
    st.stop()


@contextlib.contextmanager
def page() -> Iterator[None]:
    """Every page's body runs inside this: past the access gate, and with a damaged or unreadable store shown as a
    message instead of a traceback. (app.py applies both too, but Streamlit may run a page file on its own.)"""
    require_access()
    with store_problems_shown():
        yield


@contextlib.contextmanager
def store_problems_shown() -> Iterator[None]:
    """Run a page (or fragment); if the run store or data home cannot be read or written — a damaged database, a
    file that is not the lab's, a full disk, a read-only folder — say so and what to do, instead of a traceback.
    Everything already stored stays as it is."""
    try:
        yield
    except (StoreError, DataHomeError) as err:
        st.error(f"**The lab's data cannot be used right now.** {plain(err)}", icon=":material/database:")
        st.markdown("To check the store: `python -m cartpole_core runs check`. To save everything readable into a "
                    "fresh data home: `python -m cartpole_core runs salvage --to NEW_FOLDER`, then start the lab "
                    "with `CARTPOLE_LAB_HOME=NEW_FOLDER`.")
        st.stop()
