"""Feed-forward (MLP) actor-critic: separate actor and critic MLPs, or one shared body."""

from __future__ import annotations

import torch
from torch import nn

from rlplug.contracts import Network, State
from rlplug_a3c.configs import FeedForwardConfig
from rlplug_a3c.networks.layers import flat_obs_size, mlp, orthogonal


class FeedForwardActorCritic(Network):
    """An MLP actor-critic with no recurrent state (``initial_state`` is ``()``)."""

    def __init__(self, obs_shape: tuple[int, ...], policy_dim: int, cfg: FeedForwardConfig):
        super().__init__()
        in_size = flat_obs_size("ff", obs_shape)
        self.share_body = cfg.share_body
        if cfg.share_body:
            self.body, out = mlp(in_size, list(cfg.hidden_sizes), cfg.activation)
            self.policy_head = orthogonal(nn.Linear(out, policy_dim), 0.01)
            self.value_head = orthogonal(nn.Linear(out, 1), 1.0)
        else:
            actor, out = mlp(in_size, list(cfg.hidden_sizes), cfg.activation)
            critic, _ = mlp(in_size, list(cfg.hidden_sizes), cfg.activation)
            self.actor = nn.Sequential(actor, orthogonal(nn.Linear(out, policy_dim), 0.01))
            self.critic = nn.Sequential(critic, orthogonal(nn.Linear(out, 1), 1.0))

    def initial_state(self, batch_size: int) -> State:
        return ()

    def forward(self, obs: torch.Tensor, state: State, episode_starts: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, State]:
        if self.share_body:
            hidden = self.body(obs)
            return self.policy_head(hidden), self.value_head(hidden).squeeze(-1), ()
        return self.actor(obs), self.critic(obs).squeeze(-1), ()
