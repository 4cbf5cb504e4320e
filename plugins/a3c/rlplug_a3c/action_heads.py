"""Turn a network's policy parameters into actions, log-probabilities and entropies.

Written with plain tensor ops rather than ``torch.distributions`` objects: acting happens every
env step, and building a distribution object there costs more than the tiny network itself.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class CategoricalHead:
    """Discrete actions: the policy parameters are logits."""

    def __init__(self, space: gym.spaces.Discrete):
        self.n = int(space.n)
        self.start = int(space.start)
        self.policy_dim = self.n

    action_shape: tuple[int, ...] = ()
    action_dtype = torch.int64

    def sample(self, params: torch.Tensor, generator: torch.Generator
               ) -> tuple[torch.Tensor, list[int]]:
        """(actions for the update ``[B]``, actions for the envs: ``B`` Python ints) from the
        logits of a batch of envs ``[B, n]``, all sampled in one call.

        Gumbel-max (the argmax of the logits plus Gumbel noise is a sample of their softmax):
        half the time of ``torch.multinomial`` at this size. Python ints, because gymnasium's
        ``Discrete.contains`` checks a numpy integer several times slower."""
        gumbel = torch.rand(params.shape, generator=generator).log_().neg_().log_().neg_()
        action = (params + gumbel).argmax(-1)
        return action, [a + self.start for a in action.tolist()]

    def mode(self, params: torch.Tensor) -> int:
        """The most likely action for one env's logits ``[n]``."""
        return int(params.argmax()) + self.start

    def modes(self, params: torch.Tensor) -> list[int]:
        """The most likely action of each env of a batch ``[B, n]``."""
        return [a + self.start for a in params.argmax(-1).tolist()]

    def log_prob_entropy(self, params: torch.Tensor, actions: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        log_probs = F.log_softmax(params, -1)
        chosen = log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        return chosen, entropy


class GaussianHead:
    """Box actions: a diagonal Gaussian in [-1, 1]-normalised action units.

    The first half of the policy parameters give the means (through tanh, so they stay inside the
    action range), the second half the standard deviations, squashed smoothly into
    ``[min_std, max_std]`` and shifted so that they start at ``init_std``. Bounding the deviation
    matters: beyond about 1 the clipped actions are bang-bang noise whatever the mean, the entropy
    bonus keeps pushing it up, and an unbounded (softplus) deviation can run away early in
    training. Samples are clipped to [-1, 1] and mapped affinely onto the env's bounds, so any
    finite bounds are respected; the update uses the unclipped sample.
    """

    def __init__(self, space: gym.spaces.Box, min_std: float, init_std: float, max_std: float):
        self.low = space.low.astype(np.float32).reshape(-1)
        self.high = space.high.astype(np.float32).reshape(-1)
        self.shape = space.shape
        self.dim = self.low.size
        self.policy_dim = 2 * self.dim
        self.action_shape = (self.dim,)
        self.action_dtype = torch.float32
        self.min_std, self.std_range = min_std, max_std - min_std
        # raw std parameters start near 0 (small head init): shift them to give init_std there
        start = (init_std - min_std) / self.std_range
        self.std_shift = math.log(start / (1.0 - start))

    def _mean_std(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, raw_std = torch.tanh(params[..., : self.dim]), params[..., self.dim:]
        return mean, self.min_std + self.std_range * torch.sigmoid(raw_std + self.std_shift)

    def to_env(self, action: np.ndarray) -> np.ndarray:
        """Normalised actions ``[..., dim]`` to env actions ``[..., *space.shape]``."""
        unit = np.clip(action, -1.0, 1.0)
        env_action = self.low + (unit + 1.0) * 0.5 * (self.high - self.low)
        return env_action.reshape(*action.shape[:-1], *self.shape)

    def sample(self, params: torch.Tensor, generator: torch.Generator
               ) -> tuple[torch.Tensor, np.ndarray]:
        """(actions for the update ``[B, dim]``, actions for the envs ``[B, *space.shape]``) from
        the policy parameters of a batch of envs ``[B, 2 * dim]``, all sampled in one call."""
        mean, std = self._mean_std(params)
        action = mean + std * torch.randn(mean.shape, generator=generator)
        return action, self.to_env(action.numpy())

    def mode(self, params: torch.Tensor) -> np.ndarray:
        """The mean action for one env's policy parameters ``[2 * dim]``."""
        return self.to_env(self._mean_std(params)[0].numpy())

    def modes(self, params: torch.Tensor) -> list[np.ndarray]:
        """The mean action of each env of a batch ``[B, 2 * dim]``."""
        return list(self.to_env(self._mean_std(params)[0].numpy()))

    def log_prob_entropy(self, params: torch.Tensor, actions: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        mean, std = self._mean_std(params)
        log_std = std.log()
        log_prob = (-0.5 * ((actions - mean) / std).pow(2) - log_std - _LOG_SQRT_2PI).sum(-1)
        entropy = (0.5 + _LOG_SQRT_2PI + log_std).sum(-1)
        return log_prob, entropy


ActionHead = CategoricalHead | GaussianHead


def make_action_head(space: gym.Space, min_std: float, init_std: float,
                     max_std: float) -> ActionHead:
    if isinstance(space, gym.spaces.Discrete):
        return CategoricalHead(space)
    if isinstance(space, gym.spaces.Box):
        return GaussianHead(space, min_std, init_std, max_std)
    raise TypeError(f"A3C supports Discrete and Box actions, not {type(space).__name__}")
