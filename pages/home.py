"""Overview: the algorithms and presets the engine offers (the training dashboard builds on this)."""

import streamlit as st

from cartpole_core import ALGORITHMS, preset_names
from cartpole_core.presets import preset_description

ALGORITHM_TITLES = {"qlearning": "Tabular Q-learning", "dqn": "DQN", "ppo": "PPO"}

st.title("CartPole Lab")
st.write(
    "Tune, train and watch reinforcement-learning agents balance a pole. The training engine is ready: "
    "train from the command line with `python -m cartpole_core train --algo ppo --preset fast`. "
    "The live training dashboard is the next page to land."
)
for algo in ALGORITHMS:
    st.subheader(ALGORITHM_TITLES[algo])
    st.table({"preset": preset_names(algo), "what it is": [preset_description(algo, p) for p in preset_names(algo)]})
