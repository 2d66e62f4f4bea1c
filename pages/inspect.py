"""Inspect policy: what a checkpoint decides across the state space — Q-table heatmaps for tabular Q-learning,
policy and value over (pole angle, angular velocity) for DQN and PPO."""

import streamlit as st

from cartpole_core.watch.inspection import (
    AVERAGE,
    OBS_TITLES,
    dim_bin_labels,
    policy_grid,
    policy_grid_figure,
    qtable_figure,
    qtable_slice,
)
from dashboard.checkpoints import load_checkpoint, pick_checkpoint
from dashboard.labels import ALGORITHM_TITLES, checkpoint_label, plain
from dashboard.page import page
from dashboard.widgets import sidebar_active_runs

with page():  # past the access gate; a damaged store is a message, not a traceback

    st.title("Inspect policy")
    picked = pick_checkpoint("inspect")
    if picked is None:
        st.stop()
    run, artifact = picked
    agent = load_checkpoint(artifact)
    algo = agent.config.algo
    st.caption(f"{ALGORITHM_TITLES[algo]} · {plain(run['name'])} · {checkpoint_label(artifact)}. "
               "Blue means push left, red push right.")

    if algo == "qlearning":
        dims, bins = agent.discretizer.dims, agent.discretizer.bins
        if len(dims) < 2:
            st.info(f"This Q-table bins {len(dims)} observation dimension(s) (bins {list(bins)}); a heatmap needs two.",
                    icon=":material/info:")
            st.stop()
        layout = "-".join(map(str, bins))  # widget keys per binning, so another run's table starts from defaults
        axes = st.columns(2)
        x_dim = axes[0].selectbox("x axis", dims, index=len(dims) - 2, format_func=OBS_TITLES.__getitem__,
                                  key=f"inspect_x.{layout}")
        y_options = [d for d in dims if d != x_dim]
        y_dim = axes[1].selectbox("y axis", y_options, index=len(y_options) - 1, format_func=OBS_TITLES.__getitem__,
                                  key=f"inspect_y.{layout}.{x_dim}")
        others = [d for d in dims if d not in (x_dim, y_dim)]
        fixed = {}
        for column, dim in zip(st.columns(len(others)) if others else [], others):  # the seed's bins leave none
            labels = dim_bin_labels(agent, dim)
            fixed[dim] = column.select_slider(
                OBS_TITLES[dim], [AVERAGE, *range(len(labels))], key=f"inspect_fix.{layout}.{dim}",
                format_func=lambda k, labels=labels: k if k == AVERAGE else f"bin {k}: {labels[k]}",
                help="Fix this dimension at one bin, or average over it: mean Q-values and summed visits.")
        view = qtable_slice(agent, x_dim, y_dim, fixed)
        if AVERAGE in fixed.values():
            st.caption("Averaged dimensions: each cell shows the mean Q-values of the states it covers (so the greedy "
                       "action is the better action on average) and the sum of their visits.")
        greedy, max_q, visits = st.tabs(["Greedy action", "Max Q", "State visits"])
        greedy.plotly_chart(qtable_figure(view, "greedy_action"), key="inspect_greedy")
        greedy.caption("The action with the higher Q-value in each cell. Grey cells were never visited in training: "
                       "their Q-values are still the initial zeros, so a colour there would be no decision at all.")
        max_q.plotly_chart(qtable_figure(view, "max_q"), key="inspect_max_q")
        max_q.caption(f"The larger Q-value: the discounted return (γ = {agent.config.gamma:g}) the agent expects from "
                      "the state. Never-visited states keep their initial 0.")
        visits.plotly_chart(qtable_figure(view, "visits"), key="inspect_visits")
        visits.caption("How often training passed through each state, coloured on a log scale (hover for the count). "
                       "Q-values of rarely visited states rest on little experience.")
    else:
        controls = st.columns(3)
        cart_position = controls[0].slider(OBS_TITLES[0], -2.4, 2.4, 0.0, 0.1, key="inspect_cart_position",
                                           help="The episode ends when the cart leaves ±2.4 m.")
        cart_velocity = controls[1].slider(OBS_TITLES[1], -3.0, 3.0, 0.0, 0.1, key="inspect_cart_velocity")
        resolution = controls[2].select_slider("Grid resolution", [21, 41, 61, 81, 121], value=61,
                                               key="inspect_resolution", help="Points per axis.")
        grid = policy_grid(agent, cart_position=cart_position, cart_velocity=cart_velocity, resolution=resolution)
        policy, value = st.columns(2)
        policy.plotly_chart(policy_grid_figure(grid, "preference"), key="inspect_policy")
        what = ("the probability of pushing right" if algo == "ppo" else
                "how much more return the network expects from pushing right than left")
        policy.caption(f"{grid.preference_title}: {what}; the black line is where the greedy action switches. "
                       "A positive angle leans the pole right: a balancing policy pushes right when the pole leans or "
                       "swings right.")
        value.plotly_chart(policy_grid_figure(grid, "value"), key="inspect_value")
        value.caption(f"{grid.value_title}: the discounted return the {'critic' if algo == 'ppo' else 'network'} "
                      "expects from each state. The grid spans the ±12° at which the episode ends.")
    sidebar_active_runs()
