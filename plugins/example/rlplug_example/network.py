"""A network plugin: a GRU actor-critic.

rlplug's recurrent state has the batch in dimension 0; ``nn.GRU`` keeps its hidden state as
``[layers, B, H]``, so the state is transposed on the way in and on the way out.
"""

from __future__ import annotations

import torch
from torch import nn

from rlplug.contracts import Network, State
from rlplug.errors import UserError
from rlplug_example.configs import GRUConfig


class GRUActorCritic(Network):
    """obs -> Linear+tanh -> GRU -> (policy head, value head); state ``(h,)`` with ``h``
    ``[B, layers, H]``."""

    is_recurrent = True

    def __init__(self, obs_shape: tuple[int, ...], policy_dim: int, cfg: GRUConfig):
        super().__init__()
        if len(obs_shape) != 1:
            raise UserError(f"network=gru needs flat (1-D) observations, got shape {obs_shape}")
        self.layers, self.size = cfg.num_layers, cfg.hidden_size
        self.encoder = nn.Sequential(nn.Linear(obs_shape[0], self.size), nn.Tanh())
        self.gru = nn.GRU(self.size, self.size, num_layers=self.layers)
        self.policy = nn.Linear(self.size, policy_dim)
        self.value = nn.Linear(self.size, 1)
        nn.init.orthogonal_(self.policy.weight, gain=0.01)  # a near-uniform policy at the start

    def initial_state(self, batch_size: int) -> State:
        return (torch.zeros(batch_size, self.layers, self.size),)

    def forward(self, obs: torch.Tensor, state: State, episode_starts: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, State]:
        x = self.encoder(obs)  # [T, B, H]
        h = state[0].transpose(0, 1).contiguous()  # rlplug's [B, layers, H] -> nn.GRU's [layers, B, H]
        outputs = []
        for t in range(obs.shape[0]):  # step by step: the state must be reset inside the block
            h = h * (1.0 - episode_starts[t]).view(1, -1, 1)  # zero where an episode starts
            out, h = self.gru(x[t:t + 1], h)
            outputs.append(out)
        features = torch.cat(outputs)  # [T, B, H]
        policy = self.policy(features)  # [T, B, policy_dim]
        value = self.value(features).squeeze(-1)  # [T, B]
        return policy, value, (h.transpose(0, 1).contiguous(),)  # back to [B, layers, H]
