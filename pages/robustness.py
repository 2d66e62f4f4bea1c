"""Robustness: a trained agent under changed physics and observation noise — a grid over two factors, one
condition against the default, and links to replay either."""


import pandas as pd
import streamlit as st

from cartpole_core.engine.envs import exact_text
from cartpole_core.engine.evaluate import EVAL_SEED
from cartpole_core.watch.robustness import (
    DEFAULT_NOISE_RANGE,
    DEFAULT_POINTS,
    FACTORS,
    NOISE,
    axis_values,
    evaluate_under,
    grid_figure,
    grid_table,
    multiple_range,
    replay_query_params,
    robustness_grid,
    value_label,
)
from dashboard.checkpoints import load_checkpoint, pick_checkpoint
from dashboard.page import page
from dashboard.widgets import sidebar_active_runs

with page():  # past the access gate; a damaged store is a message, not a traceback

    KEPT_GRIDS = 8  # results kept per session, so going back to earlier inputs does not recompute

    st.title("Robustness")
    st.caption("Evaluate a trained agent in a world that differs from the one it learned in: heavier or longer "
               "poles, weaker pushes, other gravity, and Gaussian noise on what it observes (the true state stays "
               "exact). Every condition runs the same seeded greedy episodes.")
    picked = pick_checkpoint("robust")
    if picked is None:
        st.stop()
    run, artifact = picked
    agent = load_checkpoint(artifact)
    source = (str(artifact["path"]), artifact["path"].stat().st_mtime)


    def replay_link(conditions: dict[str, float], label: str) -> None:
        st.page_link("pages/replay.py", label=label, icon=":material/movie:",
                     query_params=replay_query_params(run["id"], artifact["path"].name, EVAL_SEED, conditions))


    def axis_inputs(axis: str, column, default_factor: str) -> tuple[str, list[float]]:
        """A factor and its values: points between min and max (multiples of the default, or σ for noise), bounded
        by the lab's allowed range. Physics defaults to the whole range, geometrically spaced: a solved agent holds
        near the default, so a narrow grid shows 500 everywhere and not where it breaks."""
        names = list(FACTORS)
        factor = column.selectbox(f"{axis} factor", names, index=names.index(default_factor), key=f"robust_{axis}",
                                  format_func=lambda name: FACTORS[name].title)
        spec = FACTORS[factor]
        points = column.number_input("points", 1, 9, DEFAULT_POINTS, key=f"robust_{axis}_points_{factor}")
        low, high = column.columns(2)
        if spec.is_physics:
            least, most = multiple_range(factor)
            kwargs = {"min_value": least, "max_value": most, "step": 0.25, "format": "%g"}
            lo = low.number_input("min (× default)", value=least, key=f"robust_{axis}_min_{factor}", **kwargs)
            hi = high.number_input("max (× default)", value=most, key=f"robust_{axis}_max_{factor}", **kwargs)
        else:
            kwargs = {"min_value": spec.low, "max_value": spec.high, "step": 0.05, "format": "%g"}
            lo = low.number_input("min σ", value=DEFAULT_NOISE_RANGE[0], key=f"robust_{axis}_min_{factor}", **kwargs)
            hi = high.number_input("max σ", value=DEFAULT_NOISE_RANGE[1], key=f"robust_{axis}_max_{factor}", **kwargs)
        try:
            return factor, axis_values(factor, int(points), lo, hi)
        except ValueError as err:
            column.error(str(err), icon=":material/error:")
            return factor, []


    st.subheader("Grid over two factors")
    x_column, y_column, other_column = st.columns(3)
    x_factor, x_values = axis_inputs("x", x_column, "force_mag")
    y_factor, y_values = axis_inputs("y", y_column, "length")
    episodes = other_column.number_input("episodes per cell", 1, 100, 20, key="robust_episodes",
                                         help="Greedy episodes per cell, stepped together; 20 is the lab's evaluation.")
    noise = 0.0
    if NOISE not in (x_factor, y_factor):
        noise_spec = FACTORS[NOISE]
        noise = other_column.number_input(noise_spec.title, noise_spec.low, noise_spec.high, 0.0, noise_spec.step,
                                          format="%g", key="robust_grid_noise", help="Held fixed over the whole grid.")
    if x_factor == y_factor:
        st.error("Choose two different factors for x and y.", icon=":material/error:")
    inputs = (source, x_factor, tuple(x_values), y_factor, tuple(y_values), int(episodes), noise)
    grids = st.session_state.setdefault("robust_grids", {})
    ready = x_factor != y_factor and bool(x_values) and bool(y_values)
    if other_column.button("Run grid", type="primary", icon=":material/play_arrow:", disabled=not ready,
                           key="robust_grid_button") and inputs not in grids:
        cells = len(x_values) * len(y_values)
        bar = st.progress(0.0, text=f"Evaluating {cells} conditions …")
        grids[inputs] = robustness_grid(
            agent, x_factor, x_values, y_factor, y_values, int(episodes), EVAL_SEED, {NOISE: noise},
            on_progress=lambda done, total: bar.progress(done / total, text=f"Evaluated {done} of {total} conditions"))
        bar.empty()
        while len(grids) > KEPT_GRIDS:
            grids.pop(next(iter(grids)))

    grid = grids.get(inputs)
    if grid is None:
        st.info("Set the factors and press **Run grid**.", icon=":material/info:")
    else:
        st.plotly_chart(grid_figure(grid), key="robust_heatmap")
        solved, worst = st.columns(2)
        solved.metric("cells solved (mean ≥ 475)", f"{grid.solved_fraction:.0%}")
        row, col = grid.worst_cell()
        worst.metric("worst cell", f"{grid.mean[row, col]:.1f}",
                     help=f"{FACTORS[x_factor].label} {value_label(x_factor, grid.x_values[col])}, "
                          f"{FACTORS[y_factor].label} {value_label(y_factor, grid.y_values[row])}")
        with worst:
            replay_link(grid.conditions(row, col), "Replay the worst cell")
        st.dataframe(pd.DataFrame(grid_table(grid)), key="robust_table", hide_index=True,
                     column_config={"mean return": st.column_config.NumberColumn(format="%.1f"),
                                    "std return": st.column_config.NumberColumn(format="%.1f")})

    st.subheader("One condition")
    inputs = st.columns(len(FACTORS))
    conditions = {}
    for column, spec in zip(inputs, FACTORS.values()):
        # Number inputs over the lab's allowed range (the Replay page's too): the value linked is the value typed.
        value = column.number_input(spec.title, spec.low, spec.high, spec.default, spec.step, format="%g",
                                    key=f"robust_one_{spec.name}",
                                    help=f"{exact_text(spec.low)} to {exact_text(spec.high)}; "
                                         f"default {exact_text(spec.default)}.")
        if value != spec.default:
            conditions[spec.name] = value
    single_episodes = st.number_input("episodes", 1, 100, 20, key="robust_one_episodes")
    single_inputs = (source, tuple(sorted(conditions.items())), int(single_episodes))
    baseline_inputs = (source, int(single_episodes))
    if st.session_state.get("robust_baseline_inputs") != baseline_inputs:  # the default: only when the agent changes
        plain = evaluate_under(agent, {}, int(single_episodes), EVAL_SEED)
        st.session_state["robust_baseline"] = (plain.mean(), plain.std())
        st.session_state["robust_baseline_inputs"] = baseline_inputs
    if st.session_state.get("robust_one_inputs") != single_inputs:  # only when the conditions change
        changed = evaluate_under(agent, conditions, int(single_episodes), EVAL_SEED)
        st.session_state["robust_one"] = (changed.mean(), changed.std())
        st.session_state["robust_one_inputs"] = single_inputs
    mean, std = st.session_state["robust_one"]
    plain_mean, plain_std = st.session_state["robust_baseline"]
    result, baseline = st.columns(2)
    change = round(mean - plain_mean, 1)
    result.metric("mean return under these conditions", f"{mean:.1f} ± {std:.1f}",
                  delta=f"{change:+.1f}" if change else None)  # no green "↑ +0.0" when nothing changed
    baseline.metric("default physics, no noise", f"{plain_mean:.1f} ± {plain_std:.1f}")
    replay_link(conditions, "Replay under these conditions")
    sidebar_active_runs()
