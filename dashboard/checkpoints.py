"""Choosing a trained policy on the watch pages (Replay, Inspect policy, Robustness; the live view's clip): a run
and one of its checkpoints, and the checkpoint's agent loaded once per file version."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard.handles import store
from dashboard.labels import checkpoint_label, picker_label


def runs_with_checkpoints(algos: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Runs (newest first) that have at least one checkpoint on disk, optionally of some algorithms only."""
    db = store()
    with_checkpoints = db.runs_with_artifacts()
    return [run for run in db.list_runs()
            if (algos is None or run["algo"] in algos) and run["id"] in with_checkpoints]


def pick_checkpoint(key: str, *, label: str = "Run", algos: tuple[str, ...] | None = None,
                    container: Any = None) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A run selector and a checkpoint selector (periodic ones in training order, then best and final).

    The run defaults to ``?run=ID`` when the URL names one. Returns (run, artifact) or None when no run has
    a checkpoint yet (after telling the user how to get one).
    """
    where = container or st
    runs = runs_with_checkpoints(algos)
    if not runs:
        where.info("No run has a checkpoint yet. Train one on **Train**; checkpoints are saved during training "
                   "and at its end.", icon=":material/info:")
        return None
    ids = [run["id"] for run in runs]
    by_id = {run["id"]: run for run in runs}
    wanted = st.query_params.get("run")
    if f"{key}.run" not in st.session_state or st.session_state[f"{key}.run"] not in by_id:
        st.session_state[f"{key}.run"] = wanted if wanted in by_id else ids[0]
    run_id = where.selectbox(label, ids, key=f"{key}.run",
                             format_func=lambda rid: picker_label(by_id[rid]))
    artifacts = store().artifacts(run_id)
    order = {"periodic": 0, "best": 1, "final": 2}
    artifacts.sort(key=lambda a: (order.get(a["kind"], 3), a["env_steps"]))
    labels = [checkpoint_label(a) for a in artifacts]
    default = next((i for i, a in enumerate(artifacts) if a["kind"] == "final"),
                   next((i for i, a in enumerate(artifacts) if a["kind"] == "best"), len(artifacts) - 1))
    if run_id == wanted:  # a link may name the checkpoint file (?checkpoint=step-000020000.pt)
        default = next((i for i, a in enumerate(artifacts) if a["path"].name == st.query_params.get("checkpoint")),
                       default)
    index = where.selectbox("Checkpoint", range(len(artifacts)), index=default, key=f"{key}.checkpoint.{run_id}",
                            format_func=labels.__getitem__,
                            help="Periodic checkpoints show the policy at stages of training; best is the "
                                 "highest evaluation, final the end of training.")
    return by_id[run_id], artifacts[index]


@st.cache_resource(max_entries=32)
def _cached_agent(path: str, mtime: float) -> Any:
    from cartpole_core.engine.agent import load_agent
    return load_agent(path)


def load_checkpoint(artifact: dict[str, Any]) -> Any:
    """The agent of a checkpoint, cached per file version; a missing or unreadable file shows an error and stops."""
    from cartpole_core.engine.agent import CheckpointError
    path = artifact["path"]
    try:
        return _cached_agent(str(path), path.stat().st_mtime)
    except FileNotFoundError:
        st.error(f"The checkpoint file {path} is missing (deleted outside the lab?). Pick another checkpoint.")
    except CheckpointError as err:
        st.error(f"Cannot load {path}: {err}")
    st.stop()
