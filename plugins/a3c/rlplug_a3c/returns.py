"""Return and advantage targets for one segment (pure functions, tested against hand values).

Conventions, per step ``t`` of a segment of length ``T``:
  * ``rewards[t]``: training reward; when the episode was *truncated* at ``t`` it already includes
    ``gamma * V(s_final)`` (see :func:`truncation_bootstrap`), so truncation bootstraps from the
    final observation's value while termination bootstraps from 0;
  * ``dones[t]``: 1.0 if the episode ended at ``t`` (terminated or truncated), else 0.0;
  * ``bootstrap``: V of the observation after the segment's last step (ignored if that step ended
    the episode).
"""

from __future__ import annotations

import torch


def truncation_bootstrap(reward: float, final_value: float, gamma: float) -> float:
    """The reward of a step whose episode was truncated: bootstrap from V(s') in place."""
    return reward + gamma * final_value


def n_step_returns(rewards: torch.Tensor, dones: torch.Tensor, bootstrap: torch.Tensor,
                   gamma: float) -> torch.Tensor:
    """R_t = r_t + gamma * R_{t+1}, cut at episode ends, starting from ``bootstrap``."""
    # The recursion runs on Python floats: for a segment of a few steps, per-element tensor
    # indexing would cost more than the whole update's arithmetic.
    returns = []
    running = float(bootstrap)
    for reward, done in zip(reversed(rewards.tolist()), reversed(dones.tolist()), strict=True):
        running = reward + gamma * running * (1.0 - done)
        returns.append(running)
    return torch.tensor(returns[::-1], dtype=rewards.dtype)


def gae_advantages(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor,
                   bootstrap: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Generalised advantage estimation (Schulman et al. 2016) over one segment."""
    advantages = []
    running = 0.0
    next_value = float(bootstrap)
    for reward, value, done in zip(reversed(rewards.tolist()), reversed(values.tolist()),
                                   reversed(dones.tolist()), strict=True):
        not_done = 1.0 - done
        delta = reward + gamma * next_value * not_done - value
        running = delta + gamma * lam * not_done * running
        advantages.append(running)
        next_value = value
    return torch.tensor(advantages[::-1], dtype=rewards.dtype)
