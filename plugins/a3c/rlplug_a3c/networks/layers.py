"""Building blocks shared by the A3C networks."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rlplug.errors import UserError

_ACTIVATIONS = {"tanh": torch.tanh, "relu": F.relu, "elu": F.elu, "gelu": F.gelu, "silu": F.silu}


class MLP(nn.Module):
    """Linear layers with an activation between them (and after the last one unless an
    ``out_size`` head is given, which gets orthogonal init with ``out_gain``).

    ``forward`` calls ``F.linear`` in a loop rather than chaining sub-modules: for networks this
    small, per-module call overhead costs more than the arithmetic (pitfall 9 in the A3C anchors).
    """

    def __init__(self, in_size: int, sizes: list[int], activation: str,
                 out_size: int | None = None, out_gain: float = 1.0):
        super().__init__()
        self.activation = _ACTIVATIONS[activation]
        self.hidden = nn.ModuleList()
        for size in sizes:
            self.hidden.append(orthogonal(nn.Linear(in_size, size), math.sqrt(2)))
            in_size = size
        self.head = None if out_size is None else orthogonal(nn.Linear(in_size, out_size), out_gain)
        self.out_size = in_size if out_size is None else out_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = self.activation(F.linear(x, layer.weight, layer.bias))
        if self.head is not None:
            x = F.linear(x, self.head.weight, self.head.bias)
        return x


def orthogonal(layer: nn.Linear, gain: float) -> nn.Linear:
    """Orthogonal weights and zero bias: the usual actor-critic initialisation (small policy head
    gain keeps the initial policy close to uniform)."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def flat_obs_size(network: str, obs_shape: tuple[int, ...]) -> int:
    if len(obs_shape) != 1:
        raise UserError(f"network={network} needs flat (1-D) observations but the env's have shape "
                        f"{obs_shape}; flatten them with a gymnasium wrapper or pick a 1-D env")
    return obs_shape[0]
