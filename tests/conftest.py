import pytest
import streamlit.logger
import torch

# AppTest runs scripts "bare": Streamlit logs a harmless warning for every element. Keep test output readable.
streamlit.logger.set_log_level("error")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Train as the lab's workers do: one torch thread (small networks run fastest so)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
