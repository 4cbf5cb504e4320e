"""``rlplug.testing.check_network`` passes networks that keep the contract and catches each way of
breaking it (toy networks, no plugin needed). ``check_executor`` is exercised on the A3C plugin's
executors in ``plugins/a3c/tests/test_executors.py``."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from rlplug.contracts import Network
from rlplug.testing import check_network, live_child_processes


@dataclass
class ToyConfig:
    hidden: int = 8


class LinearNet(Network):
    """Keeps the contract: a feed-forward actor-critic."""

    def __init__(self, obs_shape, policy_dim, cfg):
        super().__init__()
        self.body = nn.Linear(obs_shape[0], cfg.hidden)
        self.policy = nn.Linear(cfg.hidden, policy_dim)
        self.value = nn.Linear(cfg.hidden, 1)

    def initial_state(self, batch_size):
        return ()

    def features(self, obs):
        return torch.tanh(self.body(obs))

    def forward(self, obs, state, episode_starts):
        x = self.features(obs)
        return self.policy(x), self.value(x).squeeze(-1), ()


class GRUNet(Network):
    """Keeps the contract: a recurrent actor-critic that resets at episode starts."""

    is_recurrent = True
    reset_at_starts = True

    def __init__(self, obs_shape, policy_dim, cfg):
        super().__init__()
        self.cell = nn.GRUCell(obs_shape[0], cfg.hidden)
        self.policy = nn.Linear(cfg.hidden, policy_dim)
        self.value = nn.Linear(cfg.hidden, 1)
        self.hidden = cfg.hidden

    def initial_state(self, batch_size):
        return (torch.zeros(batch_size, self.hidden),)

    def step(self, x, h, start):
        if self.reset_at_starts:
            h = h * (1 - start).unsqueeze(-1)
        return self.cell(x, h)

    def forward(self, obs, state, episode_starts):
        (h,), outs = state, []
        for t in range(obs.shape[0]):
            h = self.step(obs[t], h, episode_starts[t])
            outs.append(h)
        out = torch.stack(outs)
        return self.policy(out), self.value(out).squeeze(-1), (h,)


class ValueWithExtraDim(LinearNet):
    def forward(self, obs, state, episode_starts):
        x = self.features(obs)
        return self.policy(x), self.value(x), ()


class NormalizesOverTime(LinearNet):
    """Acting (T=1) and the update (T=n) see different inputs."""

    def features(self, obs):
        return torch.tanh(self.body(obs - obs.mean(0, keepdim=True)))


class MixesTheBatch(LinearNet):
    def features(self, obs):
        return torch.tanh(self.body(obs - obs.mean(1, keepdim=True)))


class NeverResets(GRUNet):
    reset_at_starts = False


class ChangesItsInputState(GRUNet):
    def forward(self, obs, state, episode_starts):
        policy, value, (h,) = super().forward(obs, state, episode_starts)
        state[0].add_(1.0)  # the update reuses the state the actor started from
        return policy, value, (h,)


class UnusedParameter(LinearNet):
    def __init__(self, obs_shape, policy_dim, cfg):
        super().__init__(obs_shape, policy_dim, cfg)
        self.forgotten = nn.Linear(2, 2)


class StatelessButClaimsRecurrent(LinearNet):
    is_recurrent = True


class FastPolicyForgetsTheState(GRUNet):
    """forward_policy (acting) skips the value but also the state update."""

    def forward_policy(self, obs, state, episode_starts):
        policy, _, _ = self(obs, state, episode_starts)
        return policy, state


@pytest.mark.parametrize("cls", [LinearNet, GRUNet])
def test_check_network_passes_networks_that_keep_the_contract(cls) -> None:
    net = check_network(cls, ToyConfig(), obs_shape=(3,), policy_dim=2)
    assert isinstance(net, cls)


@pytest.mark.parametrize("cls,message", [
    (ValueWithExtraDim, "value has shape"),
    (NormalizesOverTime, "T=1 steps vs one T=n call"),
    (MixesTheBatch, "batch element run alone"),
    (NeverResets, "episode start"),
    (ChangesItsInputState, "modified its input state"),
    (UnusedParameter, "forgotten.weight gets no gradient"),
    (StatelessButClaimsRecurrent, "initial_state() is empty"),
    (FastPolicyForgetsTheState, "forward_policy vs forward"),
])
def test_check_network_catches_a_broken_contract(cls, message) -> None:
    with pytest.raises(AssertionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_network(cls, ToyConfig(), obs_shape=(3,), policy_dim=2)


def test_check_network_requires_picklable_networks() -> None:
    class LocalNet(LinearNet):  # a class inside a function cannot be pickled by reference
        pass

    with pytest.raises(AssertionError, match="cannot be pickled"):
        check_network(LocalNet, ToyConfig(), obs_shape=(3,), policy_dim=2)


def test_live_child_processes_sees_a_running_child() -> None:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert any(entry.startswith(f"{child.pid} ") for entry in live_child_processes())
    finally:
        child.kill()
        child.wait()
    assert not any(entry.startswith(f"{child.pid} ") for entry in live_child_processes())
