"""Return and advantage targets for one segment (pure functions, tested against hand values).

A segment is ``T`` rows of ``B`` envs (``[T, B]`` tensors; ``[T]`` for one env works too).
Conventions, per row ``t`` and env ``b``:
  * ``rewards[t, b]``: training reward; when env ``b``'s episode was *truncated* at ``t`` it already
    includes ``gamma * V(s_final)`` (see :func:`truncation_bootstrap`), so truncation bootstraps
    from the final observation's value while termination bootstraps from 0;
  * ``dones[t, b]``: 1.0 if the episode ended at ``t`` (terminated or truncated), else 0.0;
  * ``bootstrap[b]``: V of the observation after env ``b``'s last step in the segment (ignored if
    that step ended the episode);
  * ``valid[t, b]`` (optional, bool): False where env ``b`` did not step at row ``t`` (a cut step
    budget leaves the last row partly idle). Idle rows must come after an env's stepped rows; they
    pass ``bootstrap`` through unchanged and get a return of ``bootstrap`` and an advantage of 0.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Number = TypeVar("Number", float, np.ndarray, torch.Tensor)


def truncation_bootstrap(reward: Number, final_value: Number, gamma: float) -> Number:
    """The reward of a step whose episode was truncated: bootstrap from V(s') in place (floats, or
    arrays of the truncated envs)."""
    return reward + gamma * final_value


def n_step_returns(rewards: torch.Tensor, dones: torch.Tensor, bootstrap: torch.Tensor,
                   gamma: float, valid: torch.Tensor | None = None) -> torch.Tensor:
    """R_t = r_t + gamma * R_{t+1}, cut at episode ends, starting from ``bootstrap``, per env."""
    # in float64, like a recursion on Python floats: the result does not depend on the batching
    not_done = 1.0 - dones.double()
    rewards64 = rewards.double()
    returns = torch.empty_like(rewards64)
    running = bootstrap.double()
    for t in range(rewards.shape[0] - 1, -1, -1):
        stepped = rewards64[t] + gamma * not_done[t] * running
        running = stepped if valid is None else torch.where(valid[t], stepped, running)
        returns[t] = running
    return returns.to(rewards.dtype)


def gae_advantages(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor,
                   bootstrap: torch.Tensor, gamma: float, lam: float,
                   valid: torch.Tensor | None = None) -> torch.Tensor:
    """Generalised advantage estimation (Schulman et al. 2016) over one segment, per env."""
    not_done = 1.0 - dones.double()
    rewards64, values64 = rewards.double(), values.double()
    advantages = torch.empty_like(rewards64)
    running = torch.zeros_like(rewards64[0])
    next_value = bootstrap.double()
    for t in range(rewards.shape[0] - 1, -1, -1):
        delta = rewards64[t] + gamma * next_value * not_done[t] - values64[t]
        stepped = delta + gamma * lam * not_done[t] * running
        if valid is None:
            running, next_value = stepped, values64[t]
        else:
            running = torch.where(valid[t], stepped, running)
            next_value = torch.where(valid[t], values64[t], next_value)
        advantages[t] = running
    return advantages.to(rewards.dtype)
