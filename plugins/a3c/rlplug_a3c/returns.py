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


def _float64(x: torch.Tensor) -> np.ndarray:
    return x.detach().numpy().astype(np.float64)


def n_step_returns(rewards: torch.Tensor, dones: torch.Tensor, bootstrap: torch.Tensor,
                   gamma: float, valid: torch.Tensor | None = None) -> torch.Tensor:
    """R_t = r_t + gamma * R_{t+1}, cut at episode ends, starting from ``bootstrap``, per env."""
    # The recursion runs over rows in float64 numpy: a row of a few envs costs far less there than
    # in torch ops, and the result does not depend on how many envs share the segment.
    r, not_done = _float64(rewards), 1.0 - _float64(dones)
    stepped_rows = None if valid is None else valid.numpy()
    returns = np.empty_like(r)
    running = _float64(bootstrap)
    for t in range(r.shape[0] - 1, -1, -1):
        stepped = r[t] + gamma * not_done[t] * running
        running = stepped if stepped_rows is None else np.where(stepped_rows[t], stepped, running)
        returns[t] = running
    return torch.from_numpy(returns).to(rewards.dtype)


def gae_advantages(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor,
                   bootstrap: torch.Tensor, gamma: float, lam: float,
                   valid: torch.Tensor | None = None) -> torch.Tensor:
    """Generalised advantage estimation (Schulman et al. 2016) over one segment, per env."""
    r, v, not_done = _float64(rewards), _float64(values), 1.0 - _float64(dones)
    stepped_rows = None if valid is None else valid.numpy()
    advantages = np.empty_like(r)
    running = np.zeros_like(r[0])
    next_value = _float64(bootstrap)
    for t in range(r.shape[0] - 1, -1, -1):
        delta = r[t] + gamma * next_value * not_done[t] - v[t]
        stepped = delta + gamma * lam * not_done[t] * running
        if stepped_rows is None:
            running, next_value = stepped, v[t]
        else:
            running = np.where(stepped_rows[t], stepped, running)
            next_value = np.where(stepped_rows[t], v[t], next_value)
        advantages[t] = running
    return torch.from_numpy(advantages).to(rewards.dtype)
