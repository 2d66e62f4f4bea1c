"""What others can do to a lab: user text shown literally (never as Markdown or HTML), the access gate a server
reachable by others must have, and the live endpoint's host and signature checks."""

import gc
import json
import re
import runpy
import urllib.error
import urllib.request

import pytest
from app_support import app, live_figures, trained_group
from browser_support import ROOT, streamlit_server
from store_support import damage

from cartpole_core.runs.store import RunStore
from dashboard import access
from dashboard.live.snapshot import LiveRequest

NASTY = "**bold** :red[red] <b>html</b> _it_ [link](http://x) $x^2$ &lt; `code` # head"
TOKEN = "a-long-enough-test-token-0123"


def shows_literally(markdown: str, text: str) -> bool:
    """Whether a Markdown element with body ``markdown`` shows exactly ``text``: once its backslash escapes are
    removed it is ``text``, and outside them no character Markdown, HTML or Streamlit's directives would act on."""
    unescaped = re.sub(r"\\(.)", r"\1", markdown)
    bare = re.sub(r"\\.", "", markdown)
    return unescaped == text and not re.search(r"[*_\[\]<>:$`&#]", bare)


def test_names_with_markdown_and_html_appear_literally_in_titles_links_and_legends(home):
    run_ids = trained_group(home, seeds=(0, 1), total_env_steps=1000)
    store = RunStore(home)
    for seed, run_id in enumerate(run_ids):
        store.rename(run_id, f"{NASTY} · seed {seed}")
        store.set_tags(run_id, ["<i>tag</i>", "**t**"])
    group = store.get_run(run_ids[0])["group_id"]

    test = app("pages/live.py", group=group)
    assert not test.exception
    assert shows_literally(test.title[0].value, f"{NASTY} ×2")
    names = [trace["name"] for trace in live_figures(test)[0]["data"] if trace.get("name")]
    assert names and not any("<" in name or ">" in name for name in names)  # Plotly would read <b> as bold
    assert any("&lt;b&gt;html&lt;/b&gt;" in name for name in names)
    test.segmented_control(key="view").set_value("Diagnostics").run()
    links = [link.proto.label for link in test.get("page_link") if link.proto.page == "live"]
    assert {re.sub(r"\\(.)", r"\1", label) for label in links} == {f"{NASTY} · seed {s}" for s in (0, 1)}
    assert all(shows_literally(label, re.sub(r"\\(.)", r"\1", label)) for label in links)

    test = app("pages/live.py", run=run_ids[0])
    assert shows_literally(test.title[0].value, f"{NASTY} · seed 0")
    test = app("pages/replay.py", run=run_ids[0])
    assert not test.exception
    assert any(shows_literally(md.value.split("** · ")[0].lstrip("*"), f"{NASTY} · seed 0")
               for md in test.markdown if md.value.startswith("**"))


@pytest.mark.parametrize("page", [None, "pages/live.py", "pages/runs.py", "pages/replay.py", "pages/inspect.py",
                                  "pages/robustness.py"])
def test_a_gated_lab_shows_no_page_before_its_token_is_given(home, monkeypatch, page):
    """(Signing in is a browser test: tests/test_browser.py drives the form on a gated server.)"""
    trained_group(home, seeds=(0,), total_env_steps=1000)
    monkeypatch.setenv(access.TOKEN_ENV, TOKEN)
    test = app(page)
    assert not test.exception
    assert [title.value for title in test.title] == ["CartPole Lab"]
    assert [field.label for field in test.text_input] == ["Access token"]
    assert not test.dataframe and not test.get("plotly_chart") and not test.get("page_link")


@pytest.mark.parametrize("address, token, refused", [
    ("127.0.0.1", "", False), ("localhost", "", False), ("::1", "", False), ("127.0.0.2", "", False),
    ("0.0.0.0", "", True), ("", "", True), ("192.0.2.7", "", True), ("lab.example.org", "", True),
    ("0.0.0.0", TOKEN, False), ("0.0.0.0", "short", True)])
def test_serving_beyond_loopback_needs_the_access_gate(monkeypatch, address, token, refused):
    monkeypatch.setenv(access.TOKEN_ENV, token)
    problem = access.bind_problem(address)
    assert (problem is not None) == refused
    if refused:
        assert access.TOKEN_ENV in problem


def test_the_app_refuses_to_start_beyond_loopback_without_the_gate(monkeypatch):
    from streamlit import config

    monkeypatch.delenv(access.TOKEN_ENV, raising=False)
    before = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        with pytest.raises(SystemExit, match="CARTPOLE_LAB_TOKEN"):
            runpy.run_path(str(ROOT / "app.py"), run_name="app")  # as the server imports it, before serving
    finally:
        config.set_option("server.address", before)


@pytest.mark.parametrize("host, allowed", [
    ("127.0.0.1:8501", True), ("localhost:8501", True), ("[::1]:8501", True), ("192.0.2.7", True),
    ("evil.example:8501", False), ("", False), ("localhost.evil.example", False)])
def test_the_live_endpoint_answers_only_to_its_own_host_names(host, allowed):
    assert access.host_allowed(host) == allowed


def get(url: str, host: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_a_gated_servers_live_endpoint_checks_host_and_signature_and_names_no_path(tmp_path, monkeypatch):
    monkeypatch.setenv(access.TOKEN_ENV, TOKEN)  # the server process inherits it
    store = RunStore(tmp_path)
    (run_id,) = trained_group(tmp_path, seeds=(0,), total_env_steps=1000)
    query = LiveRequest((run_id,)).query()
    with streamlit_server(tmp_path) as url:
        live = f"{url}/lab/api/live"
        status, body = get(f"{live}?{access.signed_query(query)}")
        assert status == 200 and body["progress"], body
        status, body = get(f"{live}?{query}")
        assert status == 403 and "gated" in body["error"]
        status, body = get(f"{live}?{query}&key={'0' * 32}")
        assert status == 403
        status, body = get(f"{live}?{access.signed_query(query)}", host="rebound.example:80")
        assert status == 403 and "rebound.example" in body["error"]
        missing = LiveRequest(("gone",)).query()
        status, body = get(f"{live}?{access.signed_query(missing)}")
        assert status == 404 and "gone" in body["error"] and str(tmp_path) not in body["error"]
    assert store.get_run(run_id)["status"] == "completed"


PAGES = [None, "pages/live.py", "pages/runs.py", "pages/replay.py", "pages/inspect.py", "pages/robustness.py"]


@pytest.mark.parametrize("problem", ["damaged pages", "not a database"])
@pytest.mark.parametrize("page", PAGES)
def test_a_damaged_store_is_a_message_on_every_page(home, page, problem):
    run_ids = trained_group(home, seeds=(0, 1), total_env_steps=1000)
    gc.collect()  # no connection of this process left open: SQLite would share its WAL index with the page's
    if problem == "damaged pages":
        damage(home, whole=True)
    else:
        (home / "lab.sqlite").write_bytes(b"this is not a database\n" * 200)
        for suffix in ("-wal", "-shm"):
            (home / f"lab.sqlite{suffix}").unlink(missing_ok=True)
    before = (home / "lab.sqlite").read_bytes()
    test = app(page, run=run_ids[0])
    assert not test.exception, test.exception
    assert any("cannot be used right now" in error.value for error in test.error), [e.value for e in test.error]
    assert any("runs salvage" in markdown.value for markdown in test.markdown)
    assert (home / "lab.sqlite").read_bytes() == before  # looked at, never written


def test_a_read_only_data_home_can_still_be_browsed(home, monkeypatch):
    run_ids = trained_group(home, seeds=(0, 1), total_env_steps=1000)
    monkeypatch.setattr("cartpole_core.runs.store.home_writable", lambda _home: False)
    test = app("pages/runs.py", select=",".join(run_ids))
    assert not test.exception and not test.error
    assert len(next(frame.value for frame in test.dataframe if "name" in frame.value.columns)) == 2
    test = app("pages/live.py", run=run_ids[0])
    assert not test.exception and live_figures(test)
