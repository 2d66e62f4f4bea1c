import pytest
import streamlit.logger
import torch

# AppTest runs scripts "bare": Streamlit logs a harmless warning for every element. Keep test output readable.
streamlit.logger.set_log_level("error")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh data home for the app (CARTPOLE_LAB_HOME), as a new user's."""
    monkeypatch.setenv("CARTPOLE_LAB_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Train as the lab's workers do: one torch thread (small networks run fastest so)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def stop_the_dashboards_schedulers():
    """Each AppTest on a new data home starts the dashboard's queue runner (a thread pumping the store five times a
    second, with a warm worker process of ~0.4 GB). A server keeps one for its life; a test session would keep one
    per test that opened a page, all still polling by the browser test's throughput measurement. Stop them, and the
    study runners started beside them."""
    yield
    import sys
    import threading

    from cartpole_core.jobs.scheduler import Scheduler
    from cartpole_core.studies.driver import StudyDriver

    schedulers = [thread for thread in threading.enumerate() if isinstance(thread, (Scheduler, StudyDriver))]
    for scheduler in schedulers:
        scheduler.stop()  # its executor closes the warm worker's input: the idle worker exits
    for scheduler in schedulers:
        scheduler.join(timeout=10)
    if "dashboard.handles" in sys.modules:
        sys.modules["dashboard.handles"].scheduler.clear()  # the next page opened starts fresh ones
        sys.modules["dashboard.handles"].study_driver.clear()
