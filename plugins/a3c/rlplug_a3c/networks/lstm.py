"""LSTM actor-critic: MLP layers, an LSTM core, MLP layers and a head, for actor and critic.

    obs -> pre MLP -> LSTM -> post MLP -> policy head   (actor)
                           \\-> post MLP -> value head   (critic)

By default (``share_core=false``) actor and critic each have their own tower (pre layers, core and
post layers), so the critic's gradient never reaches the actor's parameters; with ``share_core``
they share the pre layers and the LSTM core and split after it.

The state is reset to zeros wherever ``episode_starts`` is 1, inside the same ``forward`` that
acting (``T=1``) and the update (``T=n_steps+1``, from the state stored at the segment's start)
both call, so the update recomputes exactly what the actor saw, also when episodes end inside the
segment. The update does not step through time in Python: it cuts the segment at the rows where
some env starts an episode (zeroing those envs' state there) and runs ``nn.LSTM`` over each
reset-free stretch in one call.
"""

from __future__ import annotations

import torch
from torch import nn

from rlplug.contracts import Network, State
from rlplug_a3c.configs import LSTMConfig
from rlplug_a3c.networks.layers import MLP, flat_obs_size


def _lstm(in_size: int, size: int) -> nn.LSTM:
    """A one-layer LSTM with orthogonal weights and forget-gate bias 1, so that at initialisation
    the cell keeps most of its memory from step to step (gradients reach further back)."""
    lstm = nn.LSTM(in_size, size)
    nn.init.orthogonal_(lstm.weight_ih_l0)
    nn.init.orthogonal_(lstm.weight_hh_l0)
    nn.init.zeros_(lstm.bias_ih_l0)
    nn.init.zeros_(lstm.bias_hh_l0)
    with torch.no_grad():
        lstm.bias_ih_l0[size: 2 * size].fill_(1.0)  # gate order: input, forget, cell, output
    return lstm


def reset_free_stretches(episode_starts: torch.Tensor) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` covering ``0..T``: a new stretch begins at every row ``t > 0`` where
    some env starts an episode, so no stretch has an episode start after its first row."""
    T = episode_starts.shape[0]
    if T == 1:
        return [(0, 1)]
    cuts = (torch.nonzero(episode_starts[1:].amax(-1)).flatten() + 1).tolist()
    bounds = [0, *cuts, T]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


class _Tower(nn.Module):
    """Pre MLP and LSTM: turns ``[T, B, obs]`` into the core's outputs ``[T, B, size]``."""

    def __init__(self, in_size: int, cfg: LSTMConfig):
        super().__init__()
        self.pre = MLP(in_size, list(cfg.pre_sizes), cfg.activation)
        self.lstm = _lstm(self.pre.out_size, cfg.lstm_size)

    def forward(self, obs: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
                stretches: list[tuple[int, int]], keep: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.pre(obs)  # all T steps at once
        lstm = self.lstm
        outputs = []
        for start, end in stretches:
            # keep[start] is 0 for an env whose episode starts there: its state restarts at zero
            h, c = h * keep[start], c * keep[start]
            if end - start == 1:  # one step (acting, or a stretch between two resets): the cell
                h, c = torch.lstm_cell(features[start], (h, c), lstm.weight_ih_l0,
                                       lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
                outputs.append(h.unsqueeze(0))
            else:
                out, (h1, c1) = lstm(features[start:end], (h.unsqueeze(0), c.unsqueeze(0)))
                h, c = h1[0], c1[0]
                outputs.append(out)
        return (outputs[0] if len(outputs) == 1 else torch.cat(outputs)), h, c


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
        outputs, new_state = self._cores(obs, state, episode_starts)
        # one tower: actor and critic read the same core; two: the first is the actor's
        return self.actor(outputs[0]), self.critic(outputs[-1]).squeeze(-1), new_state

    def forward_policy(self, obs: torch.Tensor, state: State, episode_starts: torch.Tensor
                       ) -> tuple[torch.Tensor, State]:
        """As forward, without the critic's head (a critic core still advances its state: the
        update recomputes the value from it)."""
        outputs, new_state = self._cores(obs, state, episode_starts)
        return self.actor(outputs[0]), new_state

    def _cores(self, obs: torch.Tensor, state: State, episode_starts: torch.Tensor
               ) -> tuple[list[torch.Tensor], State]:
        """Every tower's LSTM outputs ``[T, B, lstm_size]`` and the next state."""
        keep = (1.0 - episode_starts).unsqueeze(-1)  # [T, B, 1]
        stretches = reset_free_stretches(episode_starts)
        outputs, new_state = [], []
        for i, tower in enumerate(self.towers):
            out, h, c = tower(obs, state[2 * i], state[2 * i + 1], stretches, keep)
            outputs.append(out)
            new_state += [h, c]
        return outputs, tuple(new_state)
