"""``rlplug.testing.check_algorithm`` passes the example's REINFORCE and catches each way of
breaking the Algorithm contract (``broken_algorithms.py``: one broken duty each)."""

from __future__ import annotations

import broken_algorithms as broken
import pytest

from rlplug.config import EnvConfig
from rlplug.testing import check_algorithm
from rlplug_example.algorithm import Reinforce
from rlplug_example.configs import GRUConfig, ReinforceConfig
from rlplug_example.network import GRUActorCritic

CORRIDOR = EnvConfig(id="rlplug_example.envs:Corridor")  # module:Class, no registration needed
PENDULUM = EnvConfig(id="Pendulum-v1", max_episode_steps=50)  # Box actions, short episodes


def test_reinforce_keeps_the_algorithm_contract_with_the_gru_network() -> None:
    algo = check_algorithm(Reinforce, ReinforceConfig(), CORRIDOR, network=GRUActorCritic,
                           network_cfg=GRUConfig(hidden_size=16))
    assert algo.model.version > 0


def test_reinforce_keeps_the_algorithm_contract_with_box_actions() -> None:
    check_algorithm(Reinforce, ReinforceConfig(), PENDULUM)


@pytest.mark.parametrize("cls,message", [
    (broken.NotSharedModel, "did not reach this process's model"),
    (broken.LoadKeepsVersion, "did not restore the version"),
    (broken.OverBudget, "the budget was 300"),
    (broken.NoRelease, "give back the rest"),
    (broken.WrongRank, "ctx.rank is 1"),
    (broken.NoPush, "no update reached ctx.model"),
    (broken.ActionsAsTensors, "not an action of Discrete(2)"),
    (broken.ResetKeepsState, "after reset()"),
    (broken.ConfigInCheckpoint, "weights_only=True"),
    (broken.Unpicklable, "cannot be sent to a worker process"),
], ids=lambda v: v.__name__ if isinstance(v, type) else "")
def test_check_algorithm_catches_a_broken_duty(cls: type[Reinforce], message: str) -> None:
    env_cfg, network = CORRIDOR, None
    if cls is broken.ResetKeepsState:  # a recurrent state shows in every continuous action
        env_cfg, network = PENDULUM, GRUActorCritic
    with pytest.raises(AssertionError) as caught:
        check_algorithm(cls, ReinforceConfig(), env_cfg, network=network,
                        network_cfg=GRUConfig(hidden_size=16), timeout_s=60.0)
    assert message in str(caught.value), str(caught.value)
