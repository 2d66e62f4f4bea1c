"""How the pages write runs, checkpoints and user text: status symbols, algorithm titles, selector labels and the
Markdown escaping of names. Plain text in, plain text out — no Streamlit, so the live feed writes its progress lines
with the same symbols."""

from __future__ import annotations

import re
import time
from typing import Any

# Plain symbols every font has (emoji are missing on many Linux machines).
STATUS_ICONS = {"queued": "…", "running": "▶", "completed": "✓", "failed": "✗", "cancelled": "■", "interrupted": "!"}
ALGORITHM_TITLES = {"qlearning": "Tabular Q-learning", "dqn": "DQN", "ppo": "PPO"}

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!:<>|~$&])")


def plain(text: Any) -> str:
    """User text (a name, a tag) for an element that renders Markdown — titles, captions, page links, image
    captions: every Markdown, directive (``:red[…]``), LaTeX (``$…$``) and HTML character escaped, so it reads
    exactly as typed. Widgets' options and tables show text as is and need none of this."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def run_label(run: dict[str, Any]) -> str:
    return f"{STATUS_ICONS.get(run['status'], '')} {run['name']}"


def picker_label(run: dict[str, Any]) -> str:
    """A run in a selector: its status and name, and what tells look-alikes apart — when it was made and its id's
    unique tail (``ppo-20261123-204501-3fa2c1`` → ``3fa2c1``)."""
    made = time.strftime("%b %d %H:%M", time.localtime(run["created_at"]))
    return f"{run_label(run)} · {made} · {run['id'].rsplit('-', 1)[-1]}"


def checkpoint_label(artifact: dict[str, Any]) -> str:
    steps = f"{artifact['env_steps']:,} env steps"
    kind = {"best": "best evaluation", "final": "final"}.get(artifact["kind"])
    return f"{kind} · {steps}" if kind else f"at {steps}"
