"""The queue: ``submit`` writes runs with status ``queued`` into the store; ``cancel_run`` asks one to stop.

The queue *is* the store. Any lab process (the dashboard, the CLI) may submit or cancel; the dispatch loop
(``jobs.dispatch``) of whichever lab process is up claims queued runs and hands them to an executor to train.

The queue is bounded (``config.limits``): one launch queues at most ``SEEDS_PER_LAUNCH_MAX`` seeds, and no launch
takes the queue beyond ``QUEUED_MAX`` waiting runs (``QueueFullError``); a refused launch queues nothing.
"""

from __future__ import annotations

from cartpole_core.config.limits import QUEUED_MAX, SEEDS_PER_LAUNCH_MAX, LimitError, check_name, check_seed, check_tags
from cartpole_core.config.models import TrainConfig
from cartpole_core.runs.compare import default_name
from cartpole_core.runs.home import new_run_id
from cartpole_core.runs.store import RunStore


class QueueFullError(LimitError):
    """A launch would take the queue beyond ``limits.QUEUED_MAX`` waiting runs; nothing was queued."""


def submit(store: RunStore, config: TrainConfig, seeds: list[int], *, preset: str | None = None,
           name: str | None = None, tags: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """Queue one run per seed as one group in the store (a scheduler starts them); returns (group_id, run_ids).

    Each run is named ``<name> · seed N``; without ``name``, the name says what differs from the preset
    (``compare.default_name``: ``dqn/fast lr=5e-3``), so groups launched to compare settings tell themselves apart.

    All or nothing: ``LimitError`` (a ValueError) for more than ``SEEDS_PER_LAUNCH_MAX`` seeds, a seed outside
    ``check_seed``, or a name or tags outside the limits; ``QueueFullError`` (a LimitError) when the runs already
    queued plus these would exceed ``QUEUED_MAX`` — counted and queued in one transaction, so two launches at once
    cannot both squeeze in.
    """
    seeds = list(seeds)
    if len(seeds) > SEEDS_PER_LAUNCH_MAX:
        raise LimitError(f"one launch may queue at most {SEEDS_PER_LAUNCH_MAX} seeds, got {len(seeds):,}; launch "
                         f"the rest as another group")
    for seed in seeds:
        check_seed(seed)
    base = check_name(name) if name else default_name(config, preset)
    labels = [check_name(f"{base} · seed {seed}") for seed in seeds]
    clean_tags = check_tags(tags)
    group_id = new_run_id(f"group-{config.algo}")
    run_ids = [new_run_id(config.algo) for _ in seeds]
    with store.transaction():  # the count and the inserts see one queue
        queued = store.count_runs("queued")
        if queued + len(seeds) > QUEUED_MAX:
            raise QueueFullError(
                f"the queue is full: {queued} run(s) are waiting and this launch adds {len(seeds)}, but at most "
                f"{QUEUED_MAX} may wait at once; nothing was queued. Wait for queued runs to start, or cancel some "
                f"(Runs page, or `python -m cartpole_core runs cancel RUN_ID`), then launch again")
        for run_id, seed, label in zip(run_ids, seeds, labels, strict=True):
            store.create_run(run_id, config.to_json(), config.algo, seed, name=label, preset=preset,
                             group_id=group_id, tags=clean_tags)
    return group_id, run_ids


def cancel_run(store: RunStore, run_id: str) -> None:
    """Ask the run to stop: a queued run is cancelled at once; a running one sees the request at its next flush and
    stops at its next update (the dispatch loop that trains it stops it by force after ``CANCEL_GRACE_S``)."""
    store.request_cancel(run_id)
    run = store.get_run(run_id)
    if run and run["status"] == "queued":
        store.set_status(run_id, "cancelled")


