"""The A3C loss of one ``[T, B]`` segment: a pure function returning named terms (as TorchRL's
``A2CLoss`` does), so each term is logged and tested on its own.

    total = policy + value_coef * value - entropy_coef * entropy
    policy = -mean(log pi(a_t | s_t) * A_t)          (advantages A_t held constant)
    value = 0.5 * mean((R_t - V(s_t))^2)
    entropy = mean(H(pi(. | s_t)))

``R_t`` are n-step returns (``gae_lambda=None``, as in the paper) or GAE(lambda) advantages plus
``V(s_t)``; both are computed per env, cut at episode ends, from ``bootstrap`` (see
:mod:`rlplug_a3c.returns` for the conventions on truncation and idle rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlplug_a3c.returns import gae_advantages, n_step_returns


@dataclass
class LossTerms:
    """The loss and its parts (scalars; ``total`` carries the gradient)."""

    policy: torch.Tensor
    value: torch.Tensor
    entropy: torch.Tensor
    total: torch.Tensor


def a3c_loss(log_probs: torch.Tensor, entropy: torch.Tensor, values: torch.Tensor,
             rewards: torch.Tensor, dones: torch.Tensor, *, gamma: float,
             gae_lambda: float | None, value_coef: float, entropy_coef: float,
             normalize_advantages: bool = False, valid: torch.Tensor | None = None) -> LossTerms:
    """The A3C loss of one segment of ``T`` rows and ``B`` envs.

    ``log_probs``, ``entropy``: ``[T, B]``, of the actions taken, from the recomputed policy;
    ``values``: ``[T + 1, B]``, the recomputed values of the ``T`` observations acted on and of the
    one after the segment (the bootstrap); ``rewards``, ``dones``: ``[T, B]`` (training rewards,
    truncation bootstrap folded in); ``valid``: ``[T, B]`` bool or None (all stepped). An env idle
    on the last row bootstraps from ``values[T - 1]``, the value of the observation it would have
    acted on. Averages run over the stepped cells only.
    """
    T = rewards.shape[0]
    step_values = values[:T]
    fixed_values = step_values.detach()
    bootstrap = values[T].detach()
    if valid is not None:
        bootstrap = torch.where(valid[T - 1], bootstrap, fixed_values[T - 1])
    if gae_lambda is None:
        returns = n_step_returns(rewards, dones, bootstrap, gamma, valid)
        advantages = returns - fixed_values
    else:
        advantages = gae_advantages(rewards, fixed_values, dones, bootstrap, gamma, gae_lambda,
                                    valid)
        returns = advantages + fixed_values
    if valid is None:
        mean = torch.mean
        count = advantages.numel()
    else:
        weights = valid.to(rewards.dtype)
        count = int(valid.sum())

        def mean(x: torch.Tensor) -> torch.Tensor:
            return (x * weights).sum() / count
    if normalize_advantages and count > 1:
        centred = advantages - mean(advantages)
        std = (mean(centred.pow(2)) * count / (count - 1)).sqrt()
        advantages = centred / (std + 1e-8)
    policy = -mean(log_probs * advantages)
    value = 0.5 * mean((returns - step_values).pow(2))
    entropy_mean = mean(entropy)
    total = policy + value_coef * value - entropy_coef * entropy_mean
    return LossTerms(policy, value, entropy_mean, total)
