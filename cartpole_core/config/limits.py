"""One set of limits on what users type, for every path into the lab (Train page, Rename, CLI, import, API).

Names and tags are plain text: the pages show them literally (never as Markdown or HTML). Seeds stay within what
NumPy, Gymnasium and SQLite take without overflow. Imports no third-party package, so any layer may use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

NAME_MAX = 200  # characters in a run's name
TAG_MAX = 50  # characters in one tag
TAGS_MAX = 20  # tags on one run
SEED_MAX = 2**31 - 1  # training and episode seeds: 0 … SEED_MAX
SEEDS_PER_LAUNCH_MAX = 16  # runs one launch (a group) may queue
QUEUED_MAX = 64  # runs waiting in the queue at once; a launch beyond it is refused, nothing queued


class LimitError(ValueError):
    """User input outside the lab's limits; the message names the value and what is allowed."""


def check_name(name: Any) -> str:
    """A run name: text, 1 to NAME_MAX characters once trimmed, no control characters."""
    if not isinstance(name, str):
        raise LimitError(f"a run name must be text, got {type(name).__name__}")
    name = name.strip()
    if not 1 <= len(name) <= NAME_MAX:
        raise LimitError(f"a run name must be 1 to {NAME_MAX} characters, got {len(name):,}")
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        raise LimitError("a run name must not contain control characters (tabs, newlines, …)")
    return name


def check_tags(tags: Any) -> list[str]:
    """Tags: a list (or comma-separated text) of at most TAGS_MAX texts of 1 to TAG_MAX characters; sorted, unique."""
    if isinstance(tags, str):
        tags = tags.split(",")
    if not isinstance(tags, Iterable) or isinstance(tags, (bytes, dict)):
        raise LimitError(f"tags must be a list of texts, got {type(tags).__name__}")
    clean = set()
    for tag in tags:
        if not isinstance(tag, str):
            raise LimitError(f"a tag must be text, got {type(tag).__name__}")
        tag = tag.strip()
        if not tag:
            continue
        if len(tag) > TAG_MAX:
            raise LimitError(f"a tag must be at most {TAG_MAX} characters; {tag[:20]!r}… has {len(tag):,}")
        if any(ord(char) < 32 or ord(char) == 127 for char in tag):
            raise LimitError("a tag must not contain control characters")
        clean.add(tag)
    if len(clean) > TAGS_MAX:
        raise LimitError(f"a run may have at most {TAGS_MAX} tags, got {len(clean)}")
    return sorted(clean)


def check_seed(seed: Any, what: str = "seed") -> int:
    """A seed: an integer (not a boolean) from 0 to SEED_MAX."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise LimitError(f"{what} must be an integer from 0 to {SEED_MAX:,}, got {shown(seed)}")
    return seed


def shown(value: Any) -> str:
    """A short rendering of any value (an integer too long for ``repr`` included)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**40:
        return f"an integer of about {value.bit_length() * 0.30103:.0f} digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
