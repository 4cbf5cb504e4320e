"""Building blocks shared by the A3C networks."""

from __future__ import annotations

import math

from torch import nn

from rlplug.errors import UserError

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU}


def mlp(in_size: int, sizes: list[int], activation: str) -> tuple[nn.Sequential, int]:
    """Linear+activation layers of the given sizes; returns the block and its output size."""
    layers: list[nn.Module] = []
    for size in sizes:
        layers += [orthogonal(nn.Linear(in_size, size), math.sqrt(2)), _ACTIVATIONS[activation]()]
        in_size = size
    return nn.Sequential(*layers), in_size


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
