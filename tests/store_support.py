"""Damaged stores for the tests of every layer that must survive one (store, CLI, pages)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def damage(home: Path, whole: bool) -> None:
    """Junk bytes over a data home's database: every page after the first (the schema), or the middle third."""
    path = Path(home) / "lab.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file, nothing left in the WAL
    conn.close()
    size = path.stat().st_size
    start, end = (4096, size) if whole else (size // 3, 2 * size // 3)
    with path.open("r+b") as handle:
        handle.seek(start)
        handle.write(bytes((index * 7919 + 13) % 256 for index in range(end - start)))
