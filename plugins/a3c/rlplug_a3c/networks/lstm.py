"""LSTM actor-critic: MLP layers, an LSTM core, MLP layers and a head, for actor and critic.

    obs -> pre MLP -> LSTM cell -> post MLP -> policy head   (actor)
                                \\-> post MLP -> value head   (critic)

With ``share_core`` (the default) actor and critic share the pre layers and the LSTM core and
split after it; without it each has its own tower (pre layers, core and post layers), so the
critic's gradient never reaches the actor's parameters.

The state is reset to zeros wherever ``episode_starts`` is 1, inside the same ``forward`` that
acting (``T=1``) and the update (``T=n_steps+1``, from the state stored at the segment's start)
both call, so the update recomputes exactly what the actor saw, also when an episode ends inside
the segment.
"""

from __future__ import annotations

import torch
from torch import nn

from rlplug.contracts import Network, State
from rlplug_a3c.configs import LSTMConfig
from rlplug_a3c.networks.layers import MLP, flat_obs_size


def _lstm_cell(in_size: int, size: int) -> nn.LSTMCell:
    """An LSTM cell with orthogonal weights and forget-gate bias 1, so that at initialisation the
    cell keeps most of its memory from step to step (gradients reach further back)."""
    cell = nn.LSTMCell(in_size, size)
    nn.init.orthogonal_(cell.weight_ih)
    nn.init.orthogonal_(cell.weight_hh)
    nn.init.zeros_(cell.bias_ih)
    nn.init.zeros_(cell.bias_hh)
    with torch.no_grad():
        cell.bias_ih[size: 2 * size].fill_(1.0)  # gate order: input, forget, cell, output
    return cell


class _Tower(nn.Module):
    """Pre MLP and LSTM cell: turns ``[T, B, obs]`` into the core's outputs ``[T, B, size]``."""

    def __init__(self, in_size: int, cfg: LSTMConfig):
        super().__init__()
        self.pre = MLP(in_size, list(cfg.pre_sizes), cfg.activation)
        self.cell = _lstm_cell(self.pre.out_size, cfg.lstm_size)

    def forward(self, obs: torch.Tensor, h: torch.Tensor, c: torch.Tensor, keep: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.pre(obs)  # all T steps at once: only the cell needs the loop
        outputs = []
        for t in range(features.shape[0]):
            # keep[t] is 0 for an environment whose episode starts at step t: zero state there
            h, c = self.cell(features[t], (h * keep[t], c * keep[t]))
            outputs.append(h)
        return torch.stack(outputs), h, c


class LSTMActorCritic(Network):
    """A recurrent actor-critic; its state is ``(h, c)`` per core, each ``[B, lstm_size]``."""

    is_recurrent = True

    def __init__(self, obs_shape: tuple[int, ...], policy_dim: int, cfg: LSTMConfig):
        super().__init__()
        in_size = flat_obs_size("lstm", obs_shape)
        self.lstm_size = cfg.lstm_size
        self.towers = nn.ModuleList(_Tower(in_size, cfg)
                                    for _ in range(1 if cfg.share_core else 2))
        post = list(cfg.post_sizes)
        self.actor = MLP(cfg.lstm_size, post, cfg.activation, out_size=policy_dim, out_gain=0.01)
        self.critic = MLP(cfg.lstm_size, post, cfg.activation, out_size=1, out_gain=1.0)

    def initial_state(self, batch_size: int) -> State:
        return tuple(torch.zeros(batch_size, self.lstm_size) for _ in range(2 * len(self.towers)))

    def forward(self, obs: torch.Tensor, state: State, episode_starts: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, State]:
        keep = (1.0 - episode_starts).unsqueeze(-1)  # [T, B, 1]
        outputs, new_state = [], []
        for i, tower in enumerate(self.towers):
            out, h, c = tower(obs, state[2 * i], state[2 * i + 1], keep)
            outputs.append(out)
            new_state += [h, c]
        # one tower: actor and critic read the same core; two: the first is the actor's
        return self.actor(outputs[0]), self.critic(outputs[-1]).squeeze(-1), tuple(new_state)
