"""The app in a real browser, shared by tests/test_browser.py and bench/live_page.py: `streamlit run app.py` on a
free localhost port, and Debian's Chromium launched as this machine allows (no sandbox as root, no GPU)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(home: Path, timeout_s: float = 90, root: Path = ROOT) -> Iterator[str]:
    """`streamlit run app.py` (of the checkout at ``root``) with its data in ``home``; yields the URL once
    /_stcore/health answers."""
    with streamlit_process(home, timeout_s, root) as (url, _):
        yield url


@contextlib.contextmanager
def streamlit_process(home: Path, timeout_s: float = 90, root: Path = ROOT) -> Iterator[tuple[str, subprocess.Popen]]:
    """As :func:`streamlit_server`, yielding the server's process too."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true",
         "--server.fileWatcherType", "none"], cwd=root, env={**os.environ, "CARTPOLE_LAB_HOME": str(home)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"streamlit did not become healthy within {timeout_s:.0f} s") from None
                time.sleep(0.3)
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=20)
