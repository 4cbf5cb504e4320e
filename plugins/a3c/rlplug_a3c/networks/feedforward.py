"""Feed-forward (MLP) actor-critic: separate actor and critic MLPs, or one shared body."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlplug.contracts import Network, State
from rlplug_a3c.configs import FeedForwardConfig
from rlplug_a3c.networks.layers import MLP, flat_obs_size, orthogonal


class FeedForwardActorCritic(Network):
    """An MLP actor-critic with no recurrent state (``initial_state`` is ``()``)."""

    def __init__(self, obs_shape: tuple[int, ...], policy_dim: int, cfg: FeedForwardConfig):
        super().__init__()
        in_size = flat_obs_size("ff", obs_shape)
        hidden = list(cfg.hidden_sizes)
        self.share_body = cfg.share_body
        if cfg.share_body:
            self.body = MLP(in_size, hidden, cfg.activation)
            self.policy_head = orthogonal(torch.nn.Linear(self.body.out_size, policy_dim), 0.01)
            self.value_head = orthogonal(torch.nn.Linear(self.body.out_size, 1), 1.0)
        else:
            self.actor = MLP(in_size, hidden, cfg.activation, out_size=policy_dim, out_gain=0.01)
            self.critic = MLP(in_size, hidden, cfg.activation, out_size=1, out_gain=1.0)

    def initial_state(self, batch_size: int) -> State:
        return ()

    def forward(self, obs: torch.Tensor, state: State, episode_starts: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, State]:
        if self.share_body:
            hidden = self.body(obs)
            policy = F.linear(hidden, self.policy_head.weight, self.policy_head.bias)
            value = F.linear(hidden, self.value_head.weight, self.value_head.bias)
            return policy, value.squeeze(-1), ()
        return self.actor(obs), self.critic(obs).squeeze(-1), ()

    def forward_policy(self, obs: torch.Tensor, state: State, episode_starts: torch.Tensor
                       ) -> tuple[torch.Tensor, State]:
        if self.share_body:
            hidden = self.body(obs)
            return F.linear(hidden, self.policy_head.weight, self.policy_head.bias), ()
        return self.actor(obs), ()  # the critic's MLP is skipped
