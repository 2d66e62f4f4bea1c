"""Small MLPs shared by DQN and PPO."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional

OBS_DIM = 4
N_ACTIONS = 2


class _NumpyTanh(torch.autograd.Function):
    """tanh through NumPy: on this lab's CPUs ``torch.tanh`` takes ~2 ns an element, NumPy's ~0.25 ns, and tanh
    was the largest single cost of a PPO update (measured with 8 × 256 × 64 activations: 525 µs against 79 µs)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = torch.from_numpy(np.tanh(x.detach().numpy()))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


def tanh(x: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled() and x.requires_grad:
        return _NumpyTanh.apply(x)
    return torch.from_numpy(np.tanh(x.detach().numpy()))


class Tanh(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tanh(x)


_ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": Tanh, "elu": nn.ELU}
_ACTIVATION_FUNCTIONS = {"relu": torch.relu, "leaky_relu": functional.leaky_relu, "tanh": tanh, "elu": functional.elu}


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


class StackedActorCritic:
    """N actor-critics of one shape with their weights stacked on a member axis: one batched matmul per layer
    serves every member (``forward`` takes observations of shape (N, B, 4)).

    The weights live in one (P, N) tensor, ``flat``: one row per scalar parameter, one column per member; each
    layer's weight is a (N, in, out) view of its rows, so a member's whole network is a column (what per-member
    gradient clipping and ``StackedAdam`` work on) and its gradients land in the matching view of ``grad``.
    ``segments`` are the row ranges clipped on their own: actor and critic when separate, everything when shared.
    A member's weights read back as an ``ActorCritic`` state dict with ``member_state``, so checkpoints are the
    ones a lone run writes.
    """

    def __init__(self, hidden_sizes: list[int], activation: str, shared: bool, flat: torch.Tensor):
        self.hidden_sizes, self.activation, self.shared = list(hidden_sizes), activation, shared
        self._activate = _ACTIVATION_FUNCTIONS[activation]
        *hidden, last = [OBS_DIM, *hidden_sizes]
        hidden_layers = list(zip([*hidden], hidden_sizes))
        if shared:
            self.networks = {"trunk": [f"trunk.{2 * i}" for i in range(len(hidden_layers))], "actor": ["actor"],
                             "critic": ["critic"]}
            shapes = [*hidden_layers, (last, N_ACTIONS), (last, 1)]
        else:
            layers = [f"{2 * i}" for i in range(len(hidden_layers) + 1)]
            self.networks = {name: [f"{name}.{layer}" for layer in layers] for name in ("actor", "critic")}
            shapes = [*hidden_layers, (last, N_ACTIONS), *hidden_layers, (last, 1)]
        names = [name for layers in self.networks.values() for name in layers]
        self.layout: dict[str, tuple[int, int, int]] = {}  # layer name -> (first row, in, out)
        row = 0
        for name, (n_in, n_out) in zip(names, shapes):
            self.layout[name] = (row, n_in, n_out)
            row += (n_in + 1) * n_out
        self.critic_rows = torch.zeros(row, dtype=torch.bool)
        critic_start = self.layout[self.networks["critic"][0]][0]
        self.critic_rows[critic_start:] = True
        self.segments = [(0, row)] if shared else [(0, critic_start), (critic_start, row)]
        self._set_flat(flat)

    @property
    def members(self) -> int:
        return self.flat.shape[1]

    def _set_flat(self, flat: torch.Tensor) -> None:
        self.flat, self.grad = flat, torch.zeros_like(flat)
        self.layers: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for name, (row, n_in, n_out) in self.layout.items():
            params = []
            for tensor in (self.flat, self.grad):
                weight = tensor[row:row + n_in * n_out].view(n_in, n_out, -1).permute(2, 0, 1)
                bias = tensor[row + n_in * n_out:row + (n_in + 1) * n_out].view(1, n_out, -1).permute(2, 0, 1)
                params.append((weight, bias))
            (weight, bias), (weight_grad, bias_grad) = params
            weight, bias = weight.detach().requires_grad_(), bias.detach().requires_grad_()
            weight.grad, bias.grad = weight_grad, bias_grad  # backward accumulates into ``grad`` in place
            self.layers[name] = (weight, bias)

    @classmethod
    def stack(cls, models: list[ActorCritic], hidden_sizes: list[int], activation: str) -> StackedActorCritic:
        """The members' networks, column k = ``models[k]`` (all of one shape)."""
        empty = cls(hidden_sizes, activation, models[0].shared, torch.zeros(0, len(models)))
        flat = torch.zeros(empty.critic_rows.numel(), len(models))
        for member, model in enumerate(models):
            state = model.state_dict()
            for name, (row, n_in, n_out) in empty.layout.items():
                flat[row:row + n_in * n_out, member] = state[f"{name}.weight"].T.reshape(-1)
                flat[row + n_in * n_out:row + (n_in + 1) * n_out, member] = state[f"{name}.bias"]
        return cls(hidden_sizes, activation, models[0].shared, flat)

    def member_state(self, member: int) -> dict[str, torch.Tensor]:
        """Member ``member``'s weights as an ``ActorCritic`` state dict (copies)."""
        state = {}
        for name, (row, n_in, n_out) in self.layout.items():
            state[f"{name}.weight"] = self.flat[row:row + n_in * n_out, member].view(n_in, n_out).T.clone()
            state[f"{name}.bias"] = self.flat[row + n_in * n_out:row + (n_in + 1) * n_out, member].clone()
        return state

    def keep(self, members: list[int]) -> None:
        """Only these members (in this order) stay in the stack."""
        self._set_flat(self.flat[:, members].contiguous())

    def select(self, members: list[int] | None = None) -> StackedActorCritic:
        """A copy of some members' networks (all by default) for acting, not training: each member's weight matrix
        laid out as ``nn.Linear`` lays its out, contiguous — a batched matmul over the training layout copies every
        weight first (~30 µs a layer for 8 members of 64 × 64), and this layout computes exactly what the member's
        ``ActorCritic`` does."""
        flat = self.flat if members is None else self.flat[:, members]
        copy = StackedActorCritic(self.hidden_sizes, self.activation, self.shared, flat.contiguous())
        with torch.no_grad():
            copy.layers = {name: (weight.detach().transpose(1, 2).contiguous().transpose(1, 2),
                                  bias.detach().contiguous()) for name, (weight, bias) in copy.layers.items()}
        return copy

    def _network(self, names: list[str], x: torch.Tensor, activate_last: bool) -> torch.Tensor:
        for i, name in enumerate(names):
            weight, bias = self.layers[name]
            x = torch.baddbmm(bias, x, weight)
            if activate_last or i < len(names) - 1:
                x = self._activate(x)
        return x

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (N, B, 2) and state values (N, B) for observations (N, B, 4): member k's network on row k."""
        if self.shared:
            features = self._network(self.networks["trunk"], obs, activate_last=True)
            return (self._network(self.networks["actor"], features, False),
                    self._network(self.networks["critic"], features, False).squeeze(-1))
        return (self._network(self.networks["actor"], obs, False),
                self._network(self.networks["critic"], obs, False).squeeze(-1))

    __call__ = forward

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        """The policy's logits only (N, B, 2): acting greedily needs no critic."""
        if self.shared:
            return self._network(self.networks["actor"], self._network(self.networks["trunk"], obs, True), False)
        return self._network(self.networks["actor"], obs, False)
