"""Small MLPs shared by DQN and PPO."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional

OBS_DIM = 4
N_ACTIONS = 2


# Elements from which ``tanh`` goes through the sigmoid: below, one NumPy call costs less than three torch operations.
# A lone PPO `fast` run's tensors (256 × 64 at most) all stay below: its results are NumPy's tanh to the bit.
SIGMOID_TANH_FROM = 1 << 15


def tanh_values(x: torch.Tensor) -> torch.Tensor:
    """tanh, the fastest way this lab's CPUs have at ``x``'s size: ``torch.tanh`` takes ~3.5 ns an element there and
    was the largest single cost of a batched PPO update. Small tensors go through NumPy's tanh (one call, where torch
    pays a few µs an operation); large ones are 2 σ(2x) − 1, computed in place (the sigmoid is ~3 × cheaper an
    element than tanh: (64, 256, 64) takes 1.8 ms against NumPy's 3.0). The two agree within 2e-7."""
    x = x.detach()
    if x.numel() < SIGMOID_TANH_FROM:
        return torch.from_numpy(np.tanh(x.numpy()))
    return tanh_from_doubled_(torch.mul(x, 2.0))


def tanh_from_doubled_(doubled: torch.Tensor) -> torch.Tensor:
    """tanh(x) from ``doubled`` = 2x, in place: 2 σ(2x) − 1."""
    return doubled.sigmoid_().mul_(2.0).sub_(1.0)


class _Tanh(torch.autograd.Function):
    """``tanh_values`` under autograd (the ``nn.Module`` networks)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = tanh_values(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


def tanh(x: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled() and x.requires_grad:
        return _Tanh.apply(x)
    return tanh_values(x)


class Tanh(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tanh(x)


_ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": Tanh, "elu": nn.ELU}
_ACTIVATION_FUNCTIONS = {"relu": torch.relu, "leaky_relu": functional.leaky_relu, "tanh": tanh, "elu": functional.elu}
# d activation / d input, given the gradient at its output, its input z and its output h (the modules' defaults:
# leaky slope 0.01, ELU α 1).
_ACTIVATION_GRADIENTS = {
    "relu": lambda grad, z, h: torch.ops.aten.threshold_backward(grad, h, 0),
    "leaky_relu": lambda grad, z, h: torch.ops.aten.leaky_relu_backward(grad, z, 0.01, False),
    "tanh": lambda grad, z, h: torch.ops.aten.tanh_backward(grad, h),
    "elu": lambda grad, z, h: torch.ops.aten.elu_backward(grad, 1.0, 1, 1, True, h),
}

Layer = tuple[torch.Tensor, torch.Tensor]  # a stacked layer's weight (N, in, out) and bias (N, 1, out)
Kept = list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # each layer's input, pre-activation and output


def held_as_linear(n_in: int, n_out: int) -> bool:
    """Whether a stacked layer's weight block holds each member's matrix as ``nn.Linear`` does, (out, in), and not
    (in, out): for a narrow layer (a 64 → 2 head) MKL's batched matmuls run 2–5 × faster that way, forward and
    backward; for the others the (in, out) layout is as fast or faster."""
    return n_out < n_in


def weight_shape(n_in: int, n_out: int) -> tuple[int, int]:
    """One member's weight block as it is held."""
    return (n_out, n_in) if held_as_linear(n_in, n_out) else (n_in, n_out)


def weight_view(block: torch.Tensor, n_in: int, n_out: int) -> torch.Tensor:
    """A weight block viewed (N, *weight_shape) as the (N, in, out) matrices ``x W`` multiplies by."""
    return block.transpose(1, 2) if held_as_linear(n_in, n_out) else block


def held_form(tensor: torch.Tensor) -> torch.Tensor:
    """An ``nn.Linear`` weight (out, in) or bias (out,) as one member's block holds it."""
    if tensor.dim() == 1:
        return tensor[None]
    n_out, n_in = tensor.shape
    return tensor if held_as_linear(n_in, n_out) else tensor.T


def linear_form(held: torch.Tensor, n_in: int, n_out: int, is_weight: bool) -> torch.Tensor:
    """One member's block of a layer ``n_in`` → ``n_out`` back as its ``nn.Linear`` weight or bias (a copy)."""
    if not is_weight:
        return held[0].clone()
    return held.clone() if held_as_linear(n_in, n_out) else held.T.clone()


def forward_layers(layers: list[Layer], x: torch.Tensor, activation: str, activate_last: bool,
                   kept: Kept | None = None) -> torch.Tensor:
    """Stacked layers on inputs (N, B, in): ``x W + b`` and the activation after each (after the last only when
    ``activate_last``). ``kept``, when given, receives what ``backward_layers`` needs."""
    activate = _ACTIVATION_FUNCTIONS[activation]
    for i, (weight, bias) in enumerate(layers):
        activated = activate_last or i < len(layers) - 1
        if activated and activation == "tanh" and x.shape[0] * x.shape[1] * weight.shape[2] >= SIGMOID_TANH_FROM:
            # tanh_values' sigmoid path with its doubling done by the matmul (exact: scaling by 2 rounds nothing),
            # in place. Only the output is kept: tanh's gradient needs no more.
            z = h = tanh_from_doubled_(torch.baddbmm(bias, x, weight, beta=2.0, alpha=2.0))
        else:
            z = torch.baddbmm(bias, x, weight)
            h = activate(z) if activated else z
        if kept is not None:
            kept.append((x, z, h))
        x = h
    return x


def backward_layers(layers: list[Layer], grads: list[Layer], kept: Kept, grad: torch.Tensor, activation: str,
                    activate_last: bool, input_grad: bool = False) -> torch.Tensor | None:
    """Backpropagate ``grad`` (d loss / d output, (N, B, out)) through layers ``forward_layers`` ran: each
    layer's weight and bias gradient is written into ``grads`` (views shaped as the layers); returns d loss / d
    input when ``input_grad``. By hand, not autograd: for networks this small autograd's bookkeeping costs more than
    the arithmetic (a lone PPO gradient step took ~1.6 × as long)."""
    activation_grad = _ACTIVATION_GRADIENTS[activation]
    for i in reversed(range(len(layers))):
        x, z, h = kept[i]
        if activate_last or i < len(layers) - 1:
            grad = activation_grad(grad, z, h)
        grad_weight, grad_bias = grads[i]
        if grad_weight.stride(1) == 1 and grad_weight.shape[2] > 1:  # a block held as nn.Linear holds it, (out, in)
            torch.bmm(grad.transpose(1, 2), x, out=grad_weight.transpose(1, 2))
        else:
            torch.bmm(x.transpose(1, 2), grad, out=grad_weight)
        torch.sum(grad, dim=1, keepdim=True, out=grad_bias)
        if i or input_grad:
            grad = torch.bmm(grad, layers[i][0].transpose(1, 2))
    return grad if input_grad else None


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


# Gradients smaller than this (in elements) take each (block, member) chunk's sum of squares in one ``segment_reduce``;
# larger ones two ops per block. segment_reduce saves the ~25 small ops of the per-block sums (4 PPO `fast` members:
# ~60 against ~125 µs) but sums ~3 × slower an element (64 members: ~2.0 against ~0.7 ms).
SEGMENT_REDUCE_BELOW = 1 << 16


class MemberClipping:
    """Per-member gradient-norm clipping over a stack's ``grad``, laid out block by block (one block per parameter
    tensor), each block member-major: (N, one member's size). ``block_segments[b]`` says which segment block b is in;
    each member's gradient over each segment is clipped on its own (a PPO actor and critic)."""

    def __init__(self, block_sizes: list[int], block_segments: list[int], members: int):
        assert block_segments == sorted(block_segments), "blocks go by segment"
        self.members = members
        self.block_segment = torch.tensor(block_segments)
        segments = max(block_segments) + 1
        self.segment_blocks = (self.block_segment == torch.arange(segments)[:, None]).float()  # (S, blocks)
        self.chunk_lengths = torch.tensor(block_sizes).repeat_interleave(members)
        # a lone run's segments are contiguous in ``grad`` (blocks go by segment): one piece each
        self.segment_sizes = [sum(size for size, seg in zip(block_sizes, block_segments) if seg == s)
                              for s in range(segments)]

    @torch.no_grad()
    def clip_(self, grad: torch.Tensor, grad_blocks: list[torch.Tensor], max_norms: torch.Tensor) -> torch.Tensor:
        """Scale member k's gradient of each segment to norm ≤ ``max_norms[k]`` (inf: never), as
        ``nn.utils.clip_grad_norm_`` does for one network: by max_norm / (norm + 1e-6) when that is below 1. Returns
        the norms before scaling, (segments, N)."""
        if self.members == 1:
            pieces = [piece.view(1, -1) for piece in grad.split(self.segment_sizes)]
            norms = torch.stack([piece.square().sum(dim=1) for piece in pieces]).sqrt()
            scales = (max_norms / (norms + 1e-6)).clamp(max=1.0)
            if bool((scales < 1.0).any()):
                for piece, scale in zip(pieces, scales):
                    piece.mul_(scale[:, None])
            return norms
        if grad.numel() < SEGMENT_REDUCE_BELOW:
            chunks = torch.segment_reduce(grad.square(), "sum", lengths=self.chunk_lengths)
        else:
            chunks = torch.stack([block.view(self.members, -1).square().sum(dim=1) for block in grad_blocks])
        norms = (self.segment_blocks @ chunks.view(len(grad_blocks), self.members)).sqrt()
        scales = (max_norms / (norms + 1e-6)).clamp(max=1.0)
        if bool((scales < 1.0).any()):
            for block, scale in zip(grad_blocks, scales[self.block_segment]):
                block.view(self.members, -1).mul_(scale[:, None])
        return norms


class StackedActorCritic:
    """N actor-critics of one shape with their weights stacked on a member axis: one batched matmul per layer
    serves every member (``forward`` takes observations of shape (N, B, 4)).

    All weights live in one flat tensor, ``flat``, one block per parameter tensor: a layer's weight is the block
    viewed as (N, in, out), contiguous (a batched matmul over strided weights falls back to a loop over members,
    ~30 % of an update at N = 64), its bias the next block viewed as (N, 1, out). ``backward`` (by hand, not
    autograd) writes the gradient into the same views of ``grad``, so clipping (``clip_grad_norms_``) and Adam
    (``StackedAdam``) work on two tensors.
    ``segments`` are what is clipped on its own: actor and critic when separate, everything when shared. A
    member's weights read back as an ``ActorCritic`` state dict (``member_state``): its checkpoints are a lone run's.
    """

    def __init__(self, hidden_sizes: list[int], activation: str, shared: bool, flat: torch.Tensor, members: int):
        self.hidden_sizes, self.activation, self.shared = list(hidden_sizes), activation, shared
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
        self.layout: dict[str, tuple[int, int]] = dict(zip([n for names in self.networks.values() for n in names],
                                                           shapes))  # layer name -> (in, out)
        # One block per parameter tensor, in state-dict order: (name, (shape for one member), segment).
        critic = self.networks["critic"]
        self.blocks = [(f"{name}.{part}", weight_shape(n_in, n_out) if part == "weight" else (1, n_out),
                        int(not shared and name in critic))
                       for name, (n_in, n_out) in self.layout.items() for part in ("weight", "bias")]
        self.sizes = [rows * cols for _, (rows, cols), _ in self.blocks]
        self.segments = 1 if shared else 2
        self._set_flat(flat, members)

    def _set_flat(self, flat: torch.Tensor, members: int) -> None:
        self.members = members
        self.flat, self.grad = flat, torch.zeros_like(flat)
        self.flat_blocks = self.flat.split([members * size for size in self.sizes])
        self.grad_blocks = self.grad.split([members * size for size in self.sizes])
        params = {name: block.view(members, *shape) for (name, shape, _), block in zip(self.blocks, self.flat_blocks)}
        grads = {name: block.view(members, *shape) for (name, shape, _), block in zip(self.blocks, self.grad_blocks)}
        def layer(tensors: dict[str, torch.Tensor], name: str) -> Layer:
            return weight_view(tensors[f"{name}.weight"], *self.layout[name]), tensors[f"{name}.bias"]

        self.layers: dict[str, Layer] = {name: layer(params, name) for name in self.layout}
        self.grad_layers: dict[str, Layer] = {name: layer(grads, name) for name in self.layout}
        self.member_index = torch.cat([torch.arange(members).repeat_interleave(size) for size in self.sizes])
        self._clipping = MemberClipping(self.sizes, [segment for _, _, segment in self.blocks], members)

    @classmethod
    def stack(cls, models: list[ActorCritic], hidden_sizes: list[int], activation: str) -> StackedActorCritic:
        """The members' networks, member k = ``models[k]`` (all of one shape)."""
        states = [model.state_dict() for model in models]
        shared = models[0].shared
        blocks = cls(hidden_sizes, activation, shared, torch.zeros(0), 0).blocks
        flat = torch.cat([torch.stack([held_form(state[name]) for state in states]).reshape(-1)
                          for name, _, _ in blocks])
        return cls(hidden_sizes, activation, shared, flat, len(models))

    def member_state(self, member: int, tensor: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Member ``member``'s weights (or its part of ``tensor``, laid out as ``flat``: its gradient) as an
        ``ActorCritic`` state dict (copies)."""
        state = {}
        blocks = self.flat_blocks if tensor is None else tensor.split([self.members * size for size in self.sizes])
        for (name, shape, _), block in zip(self.blocks, blocks):
            layer, part = name.rsplit(".", 1)
            state[name] = linear_form(block.view(self.members, *shape)[member], *self.layout[layer], part == "weight")
        return state

    def take(self, tensor: torch.Tensor, members: list[int]) -> torch.Tensor:
        """A tensor laid out as ``flat`` (weights, gradients, optimizer moments), with only these members."""
        return torch.cat([block.view(self.members, -1)[members].reshape(-1)
                          for block in tensor.split([self.members * size for size in self.sizes])])

    def keep(self, members: list[int]) -> None:
        """Only these members (in this order) stay in the stack."""
        self._set_flat(self.take(self.flat, members), len(members))

    def per_weight(self, by_segment: torch.Tensor) -> torch.Tensor:
        """A value per member and segment, (N, segments), spread to every weight: laid out as ``flat``."""
        return torch.cat([by_segment[:, segment, None].expand(-1, size).reshape(-1)
                          for (_, _, segment), size in zip(self.blocks, self.sizes)])

    @torch.no_grad()
    def clip_grad_norms_(self, max_norms: torch.Tensor) -> None:
        """Scale each member's gradient of each segment to norm ≤ ``max_norms[k]`` (inf: never), as
        ``nn.utils.clip_grad_norm_`` does for one network: by max_norm / (norm + 1e-6) when that is below 1."""
        self._clipping.clip_(self.grad, list(self.grad_blocks), max_norms)

    def select(self, members: list[int] | None = None) -> StackedActorCritic:
        """A copy of some members' networks (all by default) for acting, not training: each member's weight matrix
        laid out as ``nn.Linear`` lays its out, so the copy computes exactly what the member's ``ActorCritic``
        does (the layout of ``flat`` sums in another order)."""
        members = list(range(self.members)) if members is None else members
        copy = StackedActorCritic(self.hidden_sizes, self.activation, self.shared, self.take(self.flat, members),
                                  len(members))
        with torch.no_grad():
            copy.layers = {name: (weight.detach().transpose(1, 2).contiguous().transpose(1, 2), bias.detach())
                           for name, (weight, bias) in copy.layers.items()}
        return copy

    def _network(self, network: str, x: torch.Tensor, activate_last: bool,
                 kept: dict[str, Kept] | None = None) -> torch.Tensor:
        layers = [self.layers[name] for name in self.networks[network]]
        return forward_layers(layers, x, self.activation, activate_last,
                              None if kept is None else kept.setdefault(network, []))

    def forward(self, obs: torch.Tensor,
                kept: dict[str, Kept] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (N, B, 2) and state values (N, B) for observations (N, B, 4): member k's network on row k.
        ``kept``, when given, receives what ``backward`` needs."""
        if self.shared:
            features = self._network("trunk", obs, True, kept)
            return (self._network("actor", features, False, kept),
                    self._network("critic", features, False, kept).squeeze(-1))
        return self._network("actor", obs, False, kept), self._network("critic", obs, False, kept).squeeze(-1)

    __call__ = forward

    def backward(self, kept: dict[str, Kept], grad_logits: torch.Tensor, grad_values: torch.Tensor) -> None:
        """Write into ``grad`` the gradient of a loss with d loss / d logits ``grad_logits`` (N, B, 2) and
        d loss / d values ``grad_values`` (N, B), through the ``forward`` that filled ``kept``."""
        def through(network: str, grad: torch.Tensor, activate_last: bool, input_grad: bool) -> torch.Tensor | None:
            names = self.networks[network]
            return backward_layers([self.layers[name] for name in names], [self.grad_layers[name] for name in names],
                                   kept[network], grad, self.activation, activate_last, input_grad)

        grad_features = through("actor", grad_logits, False, self.shared)
        critic_features = through("critic", grad_values[..., None], False, self.shared)
        if self.shared:
            through("trunk", grad_features + critic_features, True, False)

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        """The policy's logits only (N, B, 2): acting greedily needs no critic."""
        if self.shared:
            return self._network("actor", self._network("trunk", obs, True), False)
        return self._network("actor", obs, False)
