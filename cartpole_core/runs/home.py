"""The data home: where runs, checkpoints and the run store live.

Default ``./lab-data/`` next to the app (the repository root), overridden by ``CARTPOLE_LAB_HOME`` or the
CLI's ``--home``. ``ensure_data_home`` creates it and fails with a message naming the path when it cannot.
A home that exists but cannot be written (a read-only mount, another user's folder) can still be read:
``home_writable`` tells, and ``ensure_data_home(home, writable=False)`` only checks it is a folder (the run store
then opens read-only).
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

HOME_ENV_VAR = "CARTPOLE_LAB_HOME"
REPO_ROOT = Path(__file__).resolve().parents[2]


class DataHomeError(OSError):
    """The data home cannot be created or written."""


def data_home(override: str | os.PathLike | None = None) -> Path:
    if override:
        return Path(override).expanduser().resolve()
    from_env = os.environ.get(HOME_ENV_VAR)
    return Path(from_env).expanduser().resolve() if from_env else REPO_ROOT / "lab-data"


def home_writable(home: Path) -> bool:
    """False for an existing data home (or its ``runs`` folder or run store) that this process cannot write; True
    otherwise, a missing home included (it will be created). ``os.access`` also sees read-only mounts, even as root."""
    home = Path(home)
    if not home.is_dir():
        return True
    return all(os.access(path, os.W_OK) for path in (home, home / "runs", home / "lab.sqlite") if path.exists())


def ensure_data_home(home: Path, writable: bool = True) -> Path:
    """The data home, created when missing. ``writable=False``: it must already exist as a folder (nothing is
    created); for reading a home this process cannot write."""
    if not writable:
        if not home.is_dir():
            raise DataHomeError(f"the data home {home} is not a folder, or cannot be read; set {HOME_ENV_VAR} or "
                                f"--home to another folder")
        return home
    try:
        (home / "runs").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataHomeError(f"cannot create the data home {home}: {err.strerror or err}") from None
    if not os.access(home, os.W_OK) or not os.access(home / "runs", os.W_OK):
        raise DataHomeError(f"the data home {home} is not writable; set {HOME_ENV_VAR} or --home to another folder")
    return home


def new_run_id(algo: str) -> str:
    """Sortable, unique and readable: ``ppo-20261123-204501-3fa2c1``."""
    return f"{algo}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def write_whole(path: Path, text: str) -> None:
    """Write ``path`` through a temporary file beside it and a rename: a reader (or a crash) sees the old file or the
    new one, never a part."""
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with partial.open("w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
