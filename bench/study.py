"""Studies benchmark (issue 13): a PPO study with the Studies page open, the controller's overhead per trial, the
page's redraw with 200 trials, and whether the study's best configuration holds on episodes it never saw.

    python bench/study.py [--only study,page] [--trials 32] [--seeds 3] [--vary SPEC ...] [--parallel N]
                          [--no-page] [--page-trials 200] [--repeats 7] [--markdown]

``study`` (T1, T2): in a fresh data home, `streamlit run app.py` serves the lab and headless Chromium keeps
`/studies?study=<id>` open from the moment the study exists (the page refreshes itself every 2 s while it runs),
while `python -m cartpole_core study run` searches the PPO `fast` preset with stop-on-solve over learning rate, clip
range, entropy coefficient and GAE λ (TPE sampler, median pruner, steps_to_solve: the command's defaults). The
command runs in a subprocess under ``timed_calls``: the controller's overhead is its time inside
``StudyController.pump`` — ask, queue, read the runs, report, prune, tell — never training, which happens in worker
processes; Optuna's ask, tell and journal writes are timed too, to say where that time goes. The table also says
what the time went to: how long runs waited for their worker, how often no run was training, what a bare worker's
start costs, and the page's own CPU (server process, Chromium).

Held-out check: "solved" in training means a greedy mean return ≥ 475 over 20 evaluation episodes, all drawn from
one vectorized reset at ``engine.evaluate.EVAL_SEED`` (1,000,003), every evaluation the same 20. The best
configuration (the study's best after its confirmation: the best trials re-run on fresh seeds, the command's
default), and the `fast` preset for reference, train again on seeds 1000–1004 (the study's runs used 0 … seeds-1
and its confirmation the seeds after them), each with the study's stop-on-solve and over its whole budget; every
final agent then plays 100 held-out episodes: CartPole-v1 on episode seeds 2,000,000–2,000,099 (``reset(seed=s)``:
the episode the Replay page shows for seed s), seeds no training or evaluation reset used. Held-out solved: mean
≥ 475 over those 100.

``page`` (T3, T2 at scale): a study with the same search space and seeds but a 512-step budget, its runs trained in
this process between the controller's pumps (so the pumps are timed apart from training), and the final
evaluation return as objective (so that trials differ). With 200 trials told and the 201st in flight (this process
holds the study's lease), Chromium times the page's script runs while it refreshes itself (the study panel's and the
sidebar's 2 s fragments: from "rerun requested" or "running" to "not running", Streamlit's status widget gone); with
all 201 told, full reruns from pressing R to the end of the script run; and AppTest's run of the page.

Needs the dev requirements (playwright) and Chromium at /usr/bin/chromium. Browser, server, the study's workers and
this script share the machine's cores, as they would on a laptop. This module imports no torch or Gymnasium at its
top: ``timed_cli`` runs as the study's command line and must start as fast as it does.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.held_out import HELD_OUT_EPISODE_SEEDS, held_out_returns  # noqa: E402
from bench.live_cost import cpu_seconds  # noqa: E402
from cartpole_core.config.limits import SEEDS_PER_LAUNCH_MAX  # noqa: E402
from cartpole_core.config.presets import preset_config  # noqa: E402
from cartpole_core.runs.store import RunStore  # noqa: E402
from cartpole_core.studies import space, storage  # noqa: E402
from cartpole_core.studies.space import Dimension, SpaceError  # noqa: E402
from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, streamlit_process, streamlit_server  # noqa: E402

if TYPE_CHECKING:
    from cartpole_core.config.models import TrainConfig
    from cartpole_core.records import RunResult
    from cartpole_core.studies.controller import StudyController

TARGET_STUDY_S = 180.0  # T1: 32 trials × 3 seeds with the page open
TARGET_OVERHEAD_S = 0.050  # T2: controller time per trial
TARGET_REDRAW_S = 1.0  # T3: the Studies page with 200 trials
VARY = ("learning_rate.start=3e-4:1e-2:log", "clip_range=0.1:0.3", "ent_coef=0:0.01", "gae_lambda=0.8:1")
HELD_OUT_TRAIN_SEEDS = range(1000, 1005)
PAGE_BUDGET = 512  # env steps per run of the page's study: two PPO updates, a fraction of a second a run
REFRESHES = 8  # of the running study's panel, timed in the browser
WARM_WORKER_S = 10  # AppTest starts the dashboard's queue runner, whose warm worker imports torch for seconds
STUDY_TIMEOUT_S = 1800
SCRIPT_STATE = "document.querySelector('[data-testid=\"stApp\"]')?.getAttribute('data-test-script-state')"
# Every change of Streamlit's script-run state (rerunRequested, running, notRunning: its status widget shown or
# gone), in the page's clock. A quick run may go from rerunRequested to notRunning without a "running" drawn.
WATCH_PAGE = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    const watch = window.__bench = {states: []};
    new MutationObserver(() => watch.states.push([app.getAttribute('data-test-script-state'), performance.now()]))
        .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""
TIMED_CLI = "import sys; from bench.study import timed_cli; sys.exit(timed_cli(sys.argv[1], sys.argv[2:]))"


# ------------------------------------------------------------------------------------------- timing the controller


def _timed(function: Callable[..., Any], durations: list[float]) -> Callable[..., Any]:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            durations.append(time.perf_counter() - started)
    return timed


@contextlib.contextmanager
def timed_calls(timings: dict[str, list[float]]) -> Iterator[None]:
    """While inside, every ``StudyController.pump``, ``Study.ask``, ``Study.tell``, journal write (Optuna's
    journal file's ``append_logs``: lock, append) and ``LocalExecutor.submit`` (a run started by this process's
    workers) appends its duration to ``timings[name]``."""
    from optuna import Study

    from cartpole_core.jobs.local import LocalExecutor
    from cartpole_core.studies.controller import StudyController
    from cartpole_core.studies.storage import journal_file_class

    patched = [(StudyController, "pump"), (Study, "ask"), (Study, "tell"), (journal_file_class(), "append_logs"),
               (LocalExecutor, "submit")]
    originals = [getattr(owner, name) for owner, name in patched]
    for (owner, name), original in zip(patched, originals):
        setattr(owner, name, _timed(original, timings.setdefault(name, [])))
    try:
        yield
    finally:
        for (owner, name), original in zip(patched, originals):
            setattr(owner, name, original)


def timed_cli(timings_path: str, argv: list[str]) -> int:
    """``python -m cartpole_core`` with ``argv`` under ``timed_calls``; the durations go to ``timings_path`` (JSON)."""
    from cartpole_core import cli

    timings: dict[str, list[float]] = {}
    with timed_calls(timings):
        code = cli.main(argv)
    Path(timings_path).write_text(json.dumps(timings))
    return code


@dataclass(frozen=True)
class Overhead:
    """The controller's time in one study: per pump (a round) and per trial (all its pumps over the trials)."""

    study: str
    trials: int
    timings: dict[str, list[float]]

    @property
    def pumps(self) -> list[float]:
        return self.timings.get("pump", [])

    @property
    def per_trial_s(self) -> float:
        return sum(self.pumps) / max(self.trials, 1)

    def cells(self) -> list[str]:
        asks, tells, writes = (self.timings.get(name, []) for name in ("ask", "tell", "append_logs"))
        per_trial = f"**{_ms(self.per_trial_s)}** {_mark(self.per_trial_s <= TARGET_OVERHEAD_S)}"
        return [self.study, f"{self.trials}", f"{len(self.pumps):,}", _ms(statistics.median(self.pumps)),
                _ms(_p95(self.pumps)), _ms(max(self.pumps)), _ms(statistics.median(asks)), _ms(_p95(asks)),
                _ms(statistics.median(tells)), f"{len(writes) / max(self.trials, 1):.1f}",
                _ms(statistics.median(writes)), f"{sum(writes) / sum(self.pumps):.0%}", per_trial]


OVERHEAD_COLUMNS = ("study", "trials", "pumps", "pump median (ms)", "pump p95 (ms)", "pump max (ms)", "ask median (ms)",
                    "ask p95 (ms)", "tell median (ms)", "journal writes per trial", "journal write median (ms)",
                    "journal writes / pump time", f"per trial (ms, target ≤ {TARGET_OVERHEAD_S * 1000:.0f})")


# ------------------------------------------------------------------------------------------- T1: the study


@dataclass
class StudyOutcome:
    """The study command's summary (its last JSON line), wall time and timings, its runs, and what the page did."""

    summary: dict[str, Any]
    wall_s: float
    timings: dict[str, list[float]]
    runs: list[dict[str, Any]]
    spec: storage.StudySpec
    page_followed: bool | None = None  # the page showed the study "completed" at its end; None: no page open
    page_errors: int = 0
    page_cpu_s: tuple[float, float] | None = None  # CPU seconds of the server process and of Chromium meanwhile
    worker_start: list[tuple[float, float]] = field(default_factory=list)  # (wall, CPU) seconds of a bare worker

    @property
    def trials(self) -> int:
        return self.summary["trials"]

    @property
    def env_steps(self) -> int:
        return sum(run["env_steps"] or 0 for run in self.runs)

    @property
    def train_seconds(self) -> float:
        return sum(run["train_seconds"] or 0.0 for run in self.runs)


def study_command(args: argparse.Namespace, home: Path) -> list[str]:
    return ["study", "run", "--algo", "ppo", "--preset", "fast", "--set", "stop_on_solve=true",
            *(f"--vary={text}" for text in args.vary), "--trials", str(args.trials), "--seeds", str(args.seeds),
            *(["--parallel", str(args.parallel)] if args.parallel else []), "--home", str(home), "--json"]


def run_study(args: argparse.Namespace, workdir: Path, progress: Callable[[str], None]) -> StudyOutcome:
    """Run the study command (timed) in a fresh data home, with the Studies page open on it unless ``--no-page``."""
    home, timings_path = workdir / "study-home", workdir / "timings.json"
    out, err = workdir / "study.out", workdir / "study.err"
    with contextlib.ExitStack() as stack:
        page = url = server = None
        if not args.no_page:
            url, server = stack.enter_context(streamlit_process(home))
            page = stack.enter_context(_chromium_page())
        progress(f"study run {' '.join(study_command(args, home)[2:-3])}")
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-c", TIMED_CLI, str(timings_path),
                                    *study_command(args, home)], cwd=ROOT, stdout=out.open("w"), stderr=err.open("w"))
        study_id = None
        while process.poll() is None:
            if time.perf_counter() - started > STUDY_TIMEOUT_S:
                process.kill()
                raise SystemExit(f"the study did not end within {STUDY_TIMEOUT_S} s; its data home: {home}")
            if page is not None and study_id is None and (specs := storage.list_studies(home)[0]):
                study_id = specs[0].study_id
                cpu_before = page_cpu(server.pid)
                page.goto(f"{url}/studies?study={study_id}")
                progress(f"page open on {study_id}")
            time.sleep(0.2)
        wall_s = time.perf_counter() - started
        if process.returncode != 0:
            raise SystemExit(f"study run exited with {process.returncode}: {err.read_text()[-2000:]}")
        summary = json.loads(out.read_text().strip().splitlines()[-1])
        cpu_s = None
        if page is not None and study_id is not None:
            cpu_after = page_cpu(server.pid)
            cpu_s = tuple(sum(after[pid] - before.get(pid, 0.0) for pid in after)
                          for before, after in zip(cpu_before, cpu_after))
        followed = _shows_completed(page) if page is not None else None
        errors = page.locator('[data-testid="stException"]').count() if page is not None else 0
    store = RunStore(home)
    runs = store.list_runs(tag=storage.study_tag(summary["study_id"]))
    store.close()
    return StudyOutcome(summary, wall_s, json.loads(timings_path.read_text()), runs,
                        storage.load_spec(home, summary["study_id"]), followed, errors, cpu_s, worker_start(home))


def page_cpu(server_pid: int) -> tuple[dict[int, float], dict[int, float]]:
    """CPU seconds so far of the page's processes, by pid: the Streamlit server itself (its workers, which train,
    are processes of their own) and this script's Chromium processes."""
    chromium = [pid for pid in descendants(os.getpid()) if "chrom" in _read_proc(pid, "comm")]
    return {server_pid: cpu_seconds([server_pid])}, {pid: cpu_seconds([pid]) for pid in chromium}


def descendants(pid: int) -> list[int]:
    """The processes ``pid`` started, and theirs, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        stat = _read_proc(entry.name, "stat") if entry.name.isdigit() else ""
        if stat:
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _read_proc(pid: int | str, name: str) -> str:
    try:
        return Path(f"/proc/{pid}/{name}").read_text()
    except OSError:
        return ""


def worker_start(home: Path, times: int = 3) -> list[tuple[float, float]]:
    """Wall and CPU seconds of a bare lab worker (``python -m cartpole_core.jobs.worker``: it imports torch,
    Gymnasium and the algorithms, then exits on empty input) — what every run costs before it trains when its
    worker starts cold, as the command's do."""
    seconds = []
    for _ in range(times):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cartpole_core.jobs.worker", str(home)], cwd=ROOT, input="", text=True,
                       check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        seconds.append((time.perf_counter() - started, cpu))
    return seconds


@contextlib.contextmanager
def _chromium_page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


def _shows_completed(page: Any) -> bool:
    """Did the page notice the study's end by itself (its Status metric reads "completed")?"""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.get_by_test_id("stMetricValue").get_by_text("completed", exact=True).wait_for(timeout=20_000)
    except PlaywrightTimeout:
        return False
    return True


def study_rows(outcome: StudyOutcome, held_out_best: HeldOut | None) -> list[list[str]]:
    summary, runs, cores = outcome.summary, outcome.runs, os.cpu_count() or 1
    started = [run for run in runs if run["started_at"] is not None]
    waits = [run["started_at"] - run["created_at"] for run in started]
    lifetimes = [run["ended_at"] - run["started_at"] for run in started if run["ended_at"] is not None]
    here = len(outcome.timings.get("submit", []))
    per_minute = outcome.trials / (outcome.wall_s / 60)
    page = ("not open (--no-page)" if outcome.page_followed is None else
            f"open throughout; showed the end by itself: {'yes' if outcome.page_followed else 'no'}; "
            f"{outcome.page_errors} exception(s) shown")
    rows = [
        [f"wall time: {summary['trials']} trials × {outcome.spec.seeds} seeds, `study run` start to exit",
         f"**{outcome.wall_s:.1f} s**", f"≤ {TARGET_STUDY_S:.0f} s {_mark(outcome.wall_s <= TARGET_STUDY_S)}"],
        ["trials completed · pruned · failed",
         f"{summary['trials_completed']} · {summary['trials_pruned']} · {summary['trials_failed']}", ""],
        ["trials per minute", f"{per_minute:.1f}", f"≥ {outcome.trials / (TARGET_STUDY_S / 60):.1f} for the wall time"],
        ["env steps per second (all the study's runs' steps / wall time)",
         f"{outcome.env_steps / outcome.wall_s:,.0f} ({outcome.env_steps:,} steps)", ""],
        [f"cores spent training (runs' training seconds / wall time, of {cores})",
         f"{outcome.train_seconds / outcome.wall_s:.2f} ({outcome.train_seconds:.0f} s)", ""],
        ["runs started: by the command's workers · by the page server's queue runner",
         f"{here} · {len(started) - here}", ""],
        ["share of the time from the first run queued to the last ended with 0 · 1 · ≥ 2 runs training",
         " · ".join(f"{share:.0%}" for share in training_at_once(started)), ""],
        ["a run, median: queued → training began · training began → ended · training seconds",
         f"{_s(waits)} · {_s(lifetimes)} · {_s([run['train_seconds'] or 0.0 for run in started])}", ""],
        ["a bare worker's start, median of 3 after the study (imports, then exit): wall · CPU",
         f"{_s([wall for wall, _ in outcome.worker_start])} · {_s([cpu for _, cpu in outcome.worker_start])}", ""],
        ["the Studies page", page, ""],
        ["the page's CPU during the study: server process · Chromium (cores)",
         "—" if outcome.page_cpu_s is None else " · ".join(f"{cpu / outcome.wall_s:.3f} ({cpu:.0f} s)"
                                                          for cpu in outcome.page_cpu_s), ""],
    ]
    best = summary["best"]
    if best is None:
        rows.append(["best trial", "none completed", ""])
    else:
        rows.append([f"best trial ({summary['objective']}, IQM of its seeds)",
                     f"#{best['trial']}: {best['objective']:,.0f} — {_params(best['params'])}", ""])
        confirmation = best.get("confirmation")
        if confirmation is not None:
            seeds = confirmation["seeds"]
            rows.append([f"its confirmation (the best {outcome.spec.confirm_trials} trials re-run on fresh seeds "
                         f"{seeds[0]}–{seeds[-1]}): seeds solved · IQM over all its seeds",
                         f"{confirmation['held']}/{len(seeds)} · {confirmation['objective']:,.0f}", ""])
    if held_out_best is not None:
        solved = held_out_best.held_out_solved
        rows.append(["best configuration on 5 fresh seeds, held-out episodes solved (as the study trained it)",
                     f"**{solved}/{len(held_out_best.means)}**", f"5/5 {_mark(solved == 5)}"])
    return rows


def training_at_once(runs: list[dict[str, Any]]) -> list[float]:
    """Shares of the time from the first run queued to the last ended during which 0, 1, and 2 or more runs were
    training (from their ``started_at``, set when the worker begins, to ``ended_at``)."""
    ended = [run for run in runs if run["ended_at"] is not None]
    if not ended:
        return [1.0, 0.0, 0.0]
    changes = sorted([(run["started_at"], 1) for run in ended] + [(run["ended_at"], -1) for run in ended])
    begin, end = min(run["created_at"] for run in ended), max(run["ended_at"] for run in ended)
    seconds, training, at = [0.0, 0.0, 0.0], 0, begin
    for when, change in changes:
        seconds[min(training, 2)] += when - at
        training, at = training + change, when
    return [part / (end - begin) for part in seconds]


# ------------------------------------------------------------------------------------------- held-out check


@dataclass(frozen=True)
class HeldOut:
    """One configuration trained on the held-out training seeds: each run's result and held-out mean return."""

    configuration: str
    stops: str
    results: list[RunResult] = field(repr=False)
    means: list[float]

    @property
    def held_out_solved(self) -> int:
        return sum(mean >= 475 for mean in self.means)

    def cells(self) -> list[str]:
        solved_in_training = sum(result.final_eval_mean is not None and result.final_eval_mean >= 475
                                 for result in self.results)
        seeds = len(self.results)
        return [self.configuration, self.stops, f"{solved_in_training}/{seeds}", f"**{self.held_out_solved}/{seeds}**",
                f"{statistics.median(self.means):.1f}", f"{min(self.means):.1f}",
                ", ".join(f"{mean:.0f}" for mean in self.means),
                f"{statistics.median(result.env_steps for result in self.results):,.0f}"]


HELD_OUT_COLUMNS = ("configuration", "training stops", "final agent solved: 20 eval episodes (seed 1,000,003)",
                    "held-out solved: 100 episodes", "held-out mean, median seed", "held-out mean, worst seed",
                    "held-out mean per seed", "env steps trained, median")


def held_out(configuration: str, stops: str, config: TrainConfig, progress: Callable[[str], None]) -> HeldOut:
    from cartpole_core.engine.train import train

    results, means = [], []
    for seed in HELD_OUT_TRAIN_SEEDS:
        agent, result = train(config, seed=seed)
        results.append(result)
        means.append(float(held_out_returns(agent.act_batch).mean()))
        progress(f"held-out {configuration} ({stops}) seed {seed}: {result.env_steps:,} steps, final eval "
                 f"{result.final_eval_mean:.1f}, held-out mean {means[-1]:.1f}")
    return HeldOut(configuration, stops, results, means)


def held_out_checks(outcome: StudyOutcome, progress: Callable[[str], None]) -> list[HeldOut]:
    """The best configuration and the `fast` preset, each as the study trains (stop at the first solved evaluation)
    and over the whole budget."""
    base = outcome.spec.base()
    budget = f"whole budget ({base.total_env_steps:,} steps)"
    configs = []
    best = outcome.summary["best"]
    if best is not None:
        tuned = space.apply(base, best["params"])
        configs += [(f"study best (trial {best['trial']})", "at first solve", tuned),
                    (f"study best (trial {best['trial']})", budget, tuned.with_changes(stop_on_solve=False))]
    configs += [("`fast` preset", "at first solve", base),
                ("`fast` preset", budget, base.with_changes(stop_on_solve=False))]
    return [held_out(label, stops, config, progress) for label, stops, config in configs]


# ------------------------------------------------------------------------------------------- T3: the page


def build_page_study(home: Path, args: argparse.Namespace, dimensions: Sequence[Dimension],
                     timings: dict[str, list[float]], progress: Callable[[str], None]) -> StudyController:
    """A study of ``page_trials + 1`` trials with ``page_trials`` told and the last in flight (its runs done, not yet
    told): the controller that holds its lease is returned. Its runs train here, between the timed pumps."""
    from cartpole_core.jobs.execution import execute_stored_run
    from cartpole_core.studies.api import default_parallel
    from cartpole_core.studies.controller import INTERRUPTED, StudyController

    base = preset_config("ppo", "fast", total_env_steps=PAGE_BUDGET, stop_on_solve=True)
    spec = storage.StudySpec(
        study_id=storage.new_study_id("ppo"), name="ppo/fast: page benchmark", algo="ppo", preset="fast",
        base_config=base.to_json(), dimensions=tuple(dimensions), sampler="tpe", pruner="median", objective="final",
        trials=args.page_trials + 1, seeds=args.seeds, seed=0, parallel=default_parallel(args.seeds))
    storage.create_study(home, spec)
    store = RunStore(home)
    controller = StudyController.open(store, spec.study_id)
    told = 0
    with timed_calls(timings):
        while told < args.page_trials:
            told += sum(INTERRUPTED not in trial.user_attrs for trial in controller.pump())
            for run in store.list_runs(status="queued"):
                if store.claim(run["id"]):
                    execute_stored_run(store, run["id"])
            if told and told % 25 == 0:
                progress(f"page study: {told}/{args.page_trials} trials told")
    return controller


@dataclass
class PageTimes:
    """Seconds: script runs of the running study's page (its 2 s refreshes), full reruns, the first open, AppTest
    runs."""

    refreshes: list[float] = field(default_factory=list)
    reruns: list[float] = field(default_factory=list)
    first_open: float | None = None
    apptest: list[float] = field(default_factory=list)


def browser_times(home: Path, controller: StudyController, repeats: int, times: PageTimes,
                  progress: Callable[[str], None]) -> None:
    """Open the study's page; time its own refreshes while the study runs, then tell the last trial (the study
    completes) and time full reruns, each from pressing R to the end of the script run it started."""
    study_id = controller.spec.study_id
    with streamlit_server(home) as url, _chromium_page() as page:
        started = time.perf_counter()
        page.goto(f"{url}/studies?study={study_id}")
        page.wait_for_function(f"() => document.querySelectorAll('[data-testid=\"stMetric\"]').length >= 4 && "
                               f"{SCRIPT_STATE} === 'notRunning'", timeout=120_000, polling=50)
        times.first_open = time.perf_counter() - started
        page.evaluate(WATCH_PAGE)
        progress(f"page open ({times.first_open:.1f} s); timing {REFRESHES} script runs of the running study's page")
        while len(script_runs(page.evaluate("() => window.__bench.states"))) < REFRESHES:
            controller.lease.renew()  # the study stays "running": this process drives it
            page.wait_for_timeout(500)
        times.refreshes = script_runs(page.evaluate("() => window.__bench.states"))[:REFRESHES]

        while not controller.done:  # the last trial's runs are done: told at the next pump
            controller.pump()
        controller.close()
        page.get_by_test_id("stMetricValue").get_by_text("completed", exact=True).wait_for(timeout=30_000)
        page.wait_for_function(f"() => {SCRIPT_STATE} === 'notRunning'", timeout=60_000)
        for repeat in range(repeats):
            page.get_by_role("heading", name="Studies").click()  # focus the page, not an input: R reruns
            pressed = page.evaluate("() => { window.__bench.states = []; return performance.now(); }")
            page.keyboard.press("r")
            page.wait_for_function("() => window.__bench.states.some(s => s[0] !== 'notRunning') && "
                                   f"{SCRIPT_STATE} === 'notRunning'", timeout=60_000, polling=50)
            states = page.evaluate("() => window.__bench.states")
            times.reruns.append(_first_run_end(states, pressed))
            progress(f"rerun {repeat + 1}/{repeats}: {times.reruns[-1]:.2f} s")
            page.wait_for_timeout(2500)  # apart from the sidebar's 2 s refresh that the rerun restarted
        if page.locator('[data-testid="stException"]').count():
            raise SystemExit(f"the Studies page shows an exception for study {study_id}")


def script_runs(states: list[tuple[str, float]]) -> list[float]:
    """Seconds of each script run in a page's recorded states: from a state other than notRunning (rerun requested
    or running) to the next notRunning."""
    runs, began = [], None
    for state, at in states:
        if state != "notRunning" and began is None:
            began = at
        elif state == "notRunning" and began is not None:
            runs.append((at - began) / 1000)
            began = None
    return runs


def _first_run_end(states: list[tuple[str, float]], pressed: float) -> float:
    """Seconds from the key press to the end of the first script run after it."""
    began = next(index for index, (state, _) in enumerate(states) if state != "notRunning")
    return (next(at for state, at in states[began:] if state == "notRunning") - pressed) / 1000


def apptest_times(home: Path, study_id: str, repeats: int) -> list[float]:
    """AppTest runs of app.py on pages/studies.py with ``?study=``, after one untimed run (imports, the importance
    estimate) and the warm worker's start; then this process's dashboard threads are stopped."""
    import streamlit.logger
    from streamlit.testing.v1 import AppTest

    from cartpole_core.jobs.scheduler import Scheduler
    from cartpole_core.studies.driver import StudyDriver
    from dashboard import handles

    streamlit.logger.set_log_level("error")
    os.environ["CARTPOLE_LAB_HOME"] = str(home)
    test = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    test.query_params["study"] = study_id
    test.switch_page("pages/studies.py")
    test.run()
    if test.exception:
        raise SystemExit(f"AppTest: the Studies page raised {test.exception[0].value}")
    time.sleep(WARM_WORKER_S)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        test.run()
        seconds.append(time.perf_counter() - started)
    import threading

    threads = [thread for thread in threading.enumerate() if isinstance(thread, (Scheduler, StudyDriver))]
    for thread in threads:
        thread.stop()
    for thread in threads:
        thread.join(timeout=10)
    handles.scheduler.clear()
    handles.study_driver.clear()
    return seconds


def page_rows(times: PageTimes, trials: int) -> list[list[str]]:
    def row(what: str, values: list[float], judged: Callable[[list[float]], float] | None) -> list[str]:
        target = "" if judged is None else (f"≤ {TARGET_REDRAW_S:.0f} s ({judged.__name__}) "
                                            f"{_mark(judged(values) <= TARGET_REDRAW_S)}")
        median = f"{statistics.median(values):.2f} s"
        return [what, median if judged is None else f"**{median}**", f"{min(values):.2f}–{max(values):.2f}",
                f"{len(values)}", target]

    return [
        row(f"script runs of the page while the study runs ({trials} trials told, 1 in flight): the study panel's "
            "and the sidebar's 2 s refreshes", times.refreshes, max),
        row(f"full rerun (key R) of the completed study ({trials + 1} trials): key → script run ends", times.reruns,
            statistics.median),
        row("first open of `/studies?study=…` (new session): navigate → panel drawn", [times.first_open], None),
        row(f"AppTest run of app.py on pages/studies.py, {trials + 1} trials", times.apptest, None),
    ]


PAGE_COLUMNS = ("measurement", "median", "min–max", "n", "target")


# ------------------------------------------------------------------------------------------- format


def format_table(columns: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool, names: int = 1) -> str:
    """Rows as aligned plain text, or a GitHub Markdown table; the first ``names`` columns are left-aligned."""
    if markdown:
        rule = ["---"] * names + ["---:"] * (len(columns) - names)
        return "\n".join("| " + " | ".join(cells) + " |" for cells in [list(columns), rule, *rows])
    rows = [[cell.replace("**", "") for cell in row] for row in [list(columns), *rows]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(w) if i < names else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in rows)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def _s(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s" if values else "—"


def _p95(values: list[float]) -> float:
    return float(np.percentile(values, 95)) if values else float("nan")


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}"
                     for name, value in params.items())


def header() -> str:
    import optuna
    import streamlit

    from bench.solve import machine_facts

    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"{machine_facts(False)}; optuna {optuna.__version__}, streamlit {streamlit.__version__}; load {load}"


# ------------------------------------------------------------------------------------------- main


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}–{high}")
        return value
    return parse


PARTS = ("study", "page")


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[Dimension]]:
    parser = argparse.ArgumentParser(description="Studies benchmark (issue 13): a PPO study with the Studies page "
                                                 "open and a held-out check of its best configuration; the "
                                                 "controller's overhead per trial; the page's redraw with 200 trials.")
    parser.add_argument("--only", type=lambda text: [part.strip() for part in text.split(",") if part.strip()],
                        default=list(PARTS), help="study (T1, T2, held-out check), page (T3, T2 at scale), or both "
                                                  "(default)")
    parser.add_argument("--trials", type=_int_in(1, storage.TRIALS_MAX), default=32, help="the study's trials "
                                                                                           "(default 32)")
    parser.add_argument("--seeds", type=_int_in(1, SEEDS_PER_LAUNCH_MAX), default=3,
                        help="seeds per trial, of both studies (default 3)")
    parser.add_argument("--vary", action="append", default=None, metavar="SPEC",
                        help=f"a field to search, as `study run --vary` takes it; repeatable (default: "
                             f"{' '.join(VARY)})")
    parser.add_argument("--parallel", type=_int_in(1, storage.TRIALS_MAX), default=None,
                        help="trials in flight (default: the command's own default)")
    parser.add_argument("--no-page", action="store_true", help="run the study without the server and browser")
    parser.add_argument("--page-trials", type=_int_in(1, storage.TRIALS_MAX - 1), default=200,
                        help="trials told in the page's study (default 200)")
    parser.add_argument("--repeats", type=_int_in(1, 100), default=7, help="full reruns and AppTest runs timed "
                                                                           "(default 7)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables (for docs/BENCHMARKS.md)")
    args = parser.parse_args(argv)
    args.vary = args.vary or list(VARY)
    unknown = [part for part in args.only if part not in PARTS]
    if unknown or not args.only:
        parser.error(f"--only: unknown {', '.join(unknown) or '(none given)'}; allowed: {', '.join(PARTS)}")
    try:
        dimensions = space.check_space("ppo", [space.parse_vary("ppo", text) for text in args.vary])
    except SpaceError as err:
        parser.error(f"--vary: {err}")
    if args.parallel is not None:
        try:
            storage.check_parallel(args.parallel, args.seeds)
        except ValueError as err:
            parser.error(f"--parallel: {err}")
    needs_browser = "page" in args.only or not args.no_page
    if needs_browser and not Path(CHROMIUM).exists():
        parser.exit(2, f"the browser parts need Chromium at {CHROMIUM} (apt-get install chromium), or use "
                       f"--only study --no-page\n")
    if needs_browser:
        try:
            import playwright  # noqa: F401
        except ImportError:
            parser.exit(2, "the browser parts need playwright: pip install -r requirements-dev.txt\n")
    return args, dimensions


def main(argv: Sequence[str] | None = None) -> int:
    args, dimensions = parse_args(argv)
    import optuna

    from cartpole_core.engine.process import prepare_training_process

    prepare_training_process()  # as the lab's workers train
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def progress(line: str) -> None:
        print(f"# {line}", file=sys.stderr, flush=True)

    print(header(), flush=True)
    bullet = "- " if args.markdown else ""
    overheads: list[Overhead] = []
    with tempfile.TemporaryDirectory(prefix="study-bench-") as workdir:
        if "study" in args.only:
            outcome = run_study(args, Path(workdir), progress)
            overheads.append(Overhead(f"T1: {outcome.trials} trials, runs in workers", outcome.trials,
                                      outcome.timings))
            checks = held_out_checks(outcome, progress)
            best = next((check for check in checks if check.configuration.startswith("study best")), None)
            print(f"\n`python -m cartpole_core {' '.join(study_command(args, Path('HOME')))}`\n")
            print(format_table(("measurement", "result", "target"), study_rows(outcome, best), args.markdown, names=3))
            print()
            print(format_table(HELD_OUT_COLUMNS, [check.cells() for check in checks], args.markdown, names=2))
            print(f"\n{bullet}Held-out episodes: CartPole-v1 reset with episode seeds "
                  f"{HELD_OUT_EPISODE_SEEDS[0]:,}–{HELD_OUT_EPISODE_SEEDS[-1]:,} (Replay's seeds), agents trained "
                  f"on seeds {HELD_OUT_TRAIN_SEEDS[0]}–{HELD_OUT_TRAIN_SEEDS[-1]}; training evaluated 20 episodes "
                  f"of one vectorized reset at seed 1,000,003 and the study's runs trained on seeds "
                  f"0–{args.seeds - 1}.")
        if "page" in args.only:
            home = Path(workdir) / "page-home"
            timings: dict[str, list[float]] = {}
            started = time.perf_counter()
            controller = build_page_study(home, args, dimensions, timings, progress)
            progress(f"page study built in {time.perf_counter() - started:.0f} s")
            overheads.append(Overhead(f"T3's study: {args.page_trials} trials, runs trained in between",
                                      args.page_trials, timings))
            times = PageTimes()
            browser_times(home, controller, args.repeats, times, progress)
            times.apptest = apptest_times(home, controller.spec.study_id, args.repeats)
            print()
            print(format_table(PAGE_COLUMNS, page_rows(times, args.page_trials), args.markdown))
        print()
        print(format_table(OVERHEAD_COLUMNS, [overhead.cells() for overhead in overheads], args.markdown))
        print(f"\n{bullet}Controller overhead: the time inside `StudyController.pump` (ask, queue, read runs, report, "
              f"prune, tell; Optuna's ask and tell are part of it), summed over the study and divided by its trials.")
    print(f"\n{bullet}Load average at the end: {', '.join(f'{value:.2f}' for value in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
