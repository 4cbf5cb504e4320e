"""LSTM actor-critic: MLP layers, an LSTM core (shared by actor and critic, or one each), heads.

The state is reset to zeros wherever ``episode_starts`` is 1, inside the same ``forward`` that
acting (T=1) and the update (T=n_steps+1) both call, so the update recomputes exactly what the
actor saw, also across an episode boundary inside a segment.
"""

from __future__ import annotations

import torch
from torch import nn

from rlplug.contracts import Network, State
from rlplug_a3c.configs import LSTMConfig
from rlplug_a3c.networks.layers import flat_obs_size, mlp, orthogonal


class LSTMActorCritic(Network):
    is_recurrent = True

    def __init__(self, obs_shape: tuple[int, ...], policy_dim: int, cfg: LSTMConfig):
        super().__init__()
        in_size = flat_obs_size("lstm", obs_shape)
        self.lstm_size = cfg.lstm_size
        self.pre, core_in = mlp(in_size, list(cfg.pre_sizes), cfg.activation)
        self.cores = nn.ModuleList(nn.LSTMCell(core_in, cfg.lstm_size)
                                   for _ in range(1 if cfg.share_core else 2))
        for core in self.cores:
            nn.init.orthogonal_(core.weight_ih)
            nn.init.orthogonal_(core.weight_hh)
            nn.init.zeros_(core.bias_ih)
            nn.init.zeros_(core.bias_hh)
        actor_post, out = mlp(cfg.lstm_size, list(cfg.post_sizes), cfg.activation)
        critic_post, _ = mlp(cfg.lstm_size, list(cfg.post_sizes), cfg.activation)
        self.actor = nn.Sequential(actor_post, orthogonal(nn.Linear(out, policy_dim), 0.01))
        self.critic = nn.Sequential(critic_post, orthogonal(nn.Linear(out, 1), 1.0))

    def initial_state(self, batch_size: int) -> State:
        zeros = torch.zeros(batch_size, self.lstm_size)
        return tuple(zeros.clone() for _ in range(2 * len(self.cores)))  # (h, c) per core

    def forward(self, obs: torch.Tensor, state: State, episode_starts: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, State]:
        features = self.pre(obs)
        keep = (1.0 - episode_starts).unsqueeze(-1)  # [T, B, 1]: 0 resets the state
        outputs, new_state = [], []
        for i, core in enumerate(self.cores):
            h, c = state[2 * i], state[2 * i + 1]
            steps = []
            for t in range(features.shape[0]):
                h, c = core(features[t], (h * keep[t], c * keep[t]))
                steps.append(h)
            outputs.append(torch.stack(steps))
            new_state += [h, c]
        actor_in, critic_in = outputs[0], outputs[-1]
        return self.actor(actor_in), self.critic(critic_in).squeeze(-1), tuple(new_state)
