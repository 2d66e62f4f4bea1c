"""The README's "From Python" example runs as printed: a newcomer's first contact with the API."""

import re
from pathlib import Path

import gymnasium as gym

from cartpole_core.records import EpisodeEnded

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_from_python_example_runs(tmp_path, monkeypatch):
    section = README.read_text().split("## From Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)  # it writes dqn.pt and replay.mp4 where it runs
    obs, _ = gym.make("CartPole-v1").reset(seed=0)
    namespace = {"obs": obs}
    exec(compile(code, str(README), "exec"), namespace)
    result, events = namespace["result"], namespace["log"].events
    assert result.episodes == sum(isinstance(event, EpisodeEnded) for event in events) > 0  # the observer saw them
    assert (tmp_path / "dqn.pt").is_file() and (tmp_path / "replay.mp4").stat().st_size > 0
    assert namespace["grid"].mean.shape == (3, 3)
