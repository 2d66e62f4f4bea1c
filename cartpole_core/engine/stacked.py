"""N MLPs of one shape with their weights stacked on a member axis: a population's Q-networks.

``nets.mlp``'s networks (hidden layers with an activation, a linear head) for N members at once: one batched matmul
per layer serves every member, so N small networks cost about the per-operation overhead of one.
"""

from __future__ import annotations

import torch
from torch import nn

from cartpole_core.engine.nets import Kept, Layer, MemberClipping, backward_layers, forward_layers


class StackedMLP:
    """N ``nets.mlp`` networks of one shape; ``forward`` takes inputs of shape (N, B, in), member k's on row k.

    All weights live in one flat tensor, ``flat``, one block per parameter tensor in state-dict order: a layer's
    weight is its block viewed as (N, in, out), contiguous (a batched matmul over strided weights loops over the
    members), its bias the next block viewed as (N, 1, out) — every layer, the narrow head too: holding it as
    ``nn.Linear`` does (as ``StackedActorCritic`` does) is faster but sums in another order, and DQN ``fast`` at its
    high learning rate turns on such differences (one of its 20 judged seeds stopped solving); so its results stay
    those its preset was judged on. ``backward`` (by hand, not autograd) writes the gradient
    into the same views of ``grad``, so clipping (``clip_grad_norms_``) and Adam (``population.StackedAdam``) work on
    two tensors. A member's weights read back as the ``nn.Sequential`` state dict ``nets.mlp`` has (``member_state``).
    """

    def __init__(self, sizes: list[int], activation: str, flat: torch.Tensor, members: int):
        self.sizes, self.activation = list(sizes), activation
        layers = list(zip(sizes[:-1], sizes[1:]))  # (in, out); nn.Sequential numbers them 0, 2, 4, …
        self.blocks = [(f"{2 * i}.{part}", (n_in, n_out) if part == "weight" else (1, n_out))
                       for i, (n_in, n_out) in enumerate(layers) for part in ("weight", "bias")]
        self.block_sizes = [rows * cols for _, (rows, cols) in self.blocks]
        self._set_flat(flat, members)

    def _set_flat(self, flat: torch.Tensor, members: int) -> None:
        self.members = members
        self.flat, self.grad = flat, torch.zeros_like(flat)
        params = [block.view(members, *shape) for (_, shape), block in zip(self.blocks, self._split(self.flat))]
        grads = [block.view(members, *shape) for (_, shape), block in zip(self.blocks, self._split(self.grad))]
        self.layers: list[Layer] = list(zip(params[0::2], params[1::2]))
        self.grad_layers: list[Layer] = list(zip(grads[0::2], grads[1::2]))
        self.member_index = torch.cat([torch.arange(members).repeat_interleave(size) for size in self.block_sizes])
        self._clipping = MemberClipping(self.block_sizes, [0] * len(self.block_sizes), members)

    def _split(self, tensor: torch.Tensor, members: int | None = None) -> tuple[torch.Tensor, ...]:
        """A tensor laid out as ``flat`` (of ``members`` members, all by default), cut into its blocks."""
        members = self.members if members is None else members
        return tensor.split([members * size for size in self.block_sizes])

    @classmethod
    def stack(cls, models: list[nn.Sequential], sizes: list[int], activation: str) -> StackedMLP:
        """The members' networks, member k = ``models[k]``; ``sizes``: input, hidden sizes, output."""
        states = [model.state_dict() for model in models]
        names = [name for name, _ in cls(sizes, activation, torch.zeros(0), 0).blocks]
        flat = torch.cat([torch.stack([state[name].T if state[name].dim() == 2 else state[name][None]
                                       for state in states]).reshape(-1) for name in names])
        return cls(sizes, activation, flat, len(models))

    def copy(self) -> StackedMLP:
        """The same networks in new memory (a target network)."""
        return StackedMLP(self.sizes, self.activation, self.flat.detach().clone(), self.members)

    def member_state(self, member: int) -> dict[str, torch.Tensor]:
        """Member ``member``'s weights as a ``nets.mlp`` state dict (copies)."""
        state = {}
        for (name, shape), block in zip(self.blocks, self._split(self.flat)):
            mine = block.view(self.members, *shape)[member]
            state[name] = mine.T.clone() if name.endswith("weight") else mine[0].clone()
        return state

    def take(self, tensor: torch.Tensor, members: list[int]) -> torch.Tensor:
        """A tensor laid out as ``flat`` (weights, gradients, optimizer moments), with only these members."""
        return torch.cat([block.view(self.members, -1)[members].reshape(-1) for block in self._split(tensor)])

    def put(self, tensor: torch.Tensor, members: list[int], values: torch.Tensor) -> None:
        """Write back ``values``, laid out as ``take(tensor, members)`` gives them, into these members' entries."""
        for block, part in zip(self._split(tensor), self._split(values, len(members))):
            block.view(self.members, -1)[members] = part.view(len(members), -1)

    def keep(self, members: list[int]) -> None:
        """Only these members (in this order) stay in the stack."""
        self._set_flat(self.take(self.flat, members), len(members))

    def per_weight(self, by_member: torch.Tensor) -> torch.Tensor:
        """One value per member, (N,), spread to each of its weights: laid out as ``flat``."""
        return by_member[self.member_index]

    @torch.no_grad()
    def clip_grad_norms_(self, max_norms: torch.Tensor) -> torch.Tensor:
        """Each member's gradient norm, (N,), before scaling it to norm ≤ ``max_norms[k]`` (inf: never) as
        ``nn.utils.clip_grad_norm_`` does for one network: by max_norm / (norm + 1e-6) when that is below 1."""
        return self._clipping.clip_(self.grad, list(self._split(self.grad)), max_norms)[0]

    def select(self, members: list[int] | None = None) -> StackedMLP:
        """A copy of some members' networks (all by default) for acting, not training: each weight matrix laid
        out as ``nn.Linear`` lays its out, so the copy computes exactly what the member's ``nn.Sequential`` does."""
        members = list(range(self.members)) if members is None else members
        copy = StackedMLP(self.sizes, self.activation, self.take(self.flat, members), len(members))
        with torch.no_grad():
            copy.layers = [(weight.detach().transpose(1, 2).contiguous().transpose(1, 2), bias.detach())
                           for weight, bias in copy.layers]
        return copy

    def forward(self, x: torch.Tensor, kept: Kept | None = None) -> torch.Tensor:
        """Outputs (N, B, out) for inputs (N, B, in); ``kept``, when given, receives what ``backward`` needs."""
        return forward_layers(self.layers, x, self.activation, False, kept)

    __call__ = forward

    def backward(self, kept: Kept, grad: torch.Tensor) -> None:
        """Write into ``grad`` the gradient of a loss with d loss / d outputs ``grad`` (N, B, out), through the
        ``forward`` that filled ``kept``."""
        backward_layers(self.layers, self.grad_layers, kept, grad, self.activation, False)
