"""The Streamlit app renders for a new user (AppTest runs the real script, no browser)."""

from streamlit.testing.v1 import AppTest


def test_overview_page_lists_every_algorithm_and_its_presets():
    app = AppTest.from_file("../app.py", default_timeout=60).run()
    assert not app.exception
    assert app.title[0].value == "CartPole Lab"
    assert [h.value for h in app.subheader] == ["Tabular Q-learning", "DQN", "PPO"]
    shown = " ".join(str(table.value) for table in app.table)
    assert "seed" in shown and "fast" in shown
