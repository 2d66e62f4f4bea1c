"""Small MLPs shared by DQN and PPO."""

from __future__ import annotations

from torch import nn

OBS_DIM = 4
N_ACTIONS = 2
_ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh, "elu": nn.ELU}


def mlp(in_dim: int, hidden_sizes: list[int], out_dim: int | None, activation: str) -> nn.Sequential:
    """Linear → activation per hidden layer, then a linear head of ``out_dim`` (none when ``out_dim`` is None)."""
    layers: list[nn.Module] = []
    for size in hidden_sizes:
        layers += [nn.Linear(in_dim, size), _ACTIVATIONS[activation]()]
        in_dim = size
    if out_dim is not None:
        layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """Policy logits and state value, with separate networks or a shared trunk."""

    def __init__(self, hidden_sizes: list[int], activation: str, shared: bool):
        super().__init__()
        self.shared = shared
        if shared:
            self.trunk = mlp(OBS_DIM, hidden_sizes, None, activation)
            self.actor = nn.Linear(hidden_sizes[-1], N_ACTIONS)
            self.critic = nn.Linear(hidden_sizes[-1], 1)
        else:
            self.trunk = nn.Identity()
            self.actor = mlp(OBS_DIM, hidden_sizes, N_ACTIONS, activation)
            self.critic = mlp(OBS_DIM, hidden_sizes, 1, activation)

    def forward(self, obs):
        features = self.trunk(obs)
        return self.actor(features), self.critic(features).squeeze(-1)

    def logits(self, obs):
        return self.actor(self.trunk(obs))
