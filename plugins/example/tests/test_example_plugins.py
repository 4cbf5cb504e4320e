"""The example's network, executor and env keep their contracts (``rlplug.testing``, gymnasium's
env checker) and behave as documented. Its algorithm: ``test_check_algorithm.py``."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from rlplug.testing import check_executor, check_network
from rlplug_example.configs import GRUConfig, SimpleThreadsConfig
from rlplug_example.envs import Corridor
from rlplug_example.executor import SimpleThreadsExecutor
from rlplug_example.network import GRUActorCritic

LEFT, RIGHT = 0, 1


@pytest.mark.parametrize("cfg", [GRUConfig(hidden_size=8), GRUConfig(hidden_size=8, num_layers=2)],
                         ids=["one-layer", "two-layers"])
def test_gru_network_keeps_the_network_contract(cfg: GRUConfig) -> None:
    net = check_network(GRUActorCritic, cfg, obs_shape=(3,), policy_dim=2)
    assert net.is_recurrent


def test_gru_state_has_the_batch_in_dimension_0() -> None:
    net = GRUActorCritic((3,), 2, GRUConfig(hidden_size=8, num_layers=2))
    (h,) = net.initial_state(5)
    assert h.shape == (5, 2, 8)  # [B, layers, H], not nn.GRU's [layers, B, H]
    _, _, (h_next,) = net(torch.zeros(1, 5, 3), (h,), torch.zeros(1, 5))
    assert h_next.shape == (5, 2, 8)


def test_simple_threads_executor_keeps_the_executor_contract() -> None:
    check_executor(SimpleThreadsExecutor, SimpleThreadsConfig(workers=3))


def test_corridor_passes_gymnasiums_env_checker() -> None:
    check_env(Corridor(), skip_render_check=True)


def test_corridor_rewards_the_walk_to_its_right_end_as_a_success() -> None:
    env = Corridor(length=5, max_steps=20, step_cost=0.01)
    obs, _ = env.reset(seed=3)
    start = env.position
    assert 0 <= start < 2 and obs[0] == pytest.approx(start / 4) and obs[1] == 0.0
    for _ in range(4 - start - 1):
        obs, reward, terminated, truncated, info = env.step(RIGHT)
        assert (reward, terminated, truncated, info) == (pytest.approx(-0.01), False, False, {})
    obs, reward, terminated, truncated, info = env.step(RIGHT)
    assert reward == pytest.approx(0.99) and terminated and not truncated
    assert info == {"is_success": True} and obs[0] == 1.0


def test_corridor_truncates_after_max_steps_without_success() -> None:
    env = Corridor(length=5, max_steps=3)
    env.reset(seed=0)
    results = [env.step(LEFT) for _ in range(3)]
    assert env.position == 0  # the left wall holds
    assert [r[3] for r in results] == [False, False, True]
    assert results[-1][4] == {"is_success": False} and not results[-1][2]


def test_corridor_episodes_are_seeded() -> None:
    starts = [Corridor(length=40).reset(seed=seed)[0][0] for seed in (7, 7, 8)]
    assert starts[0] == starts[1]
    assert gym.spaces.Box(0.0, 1.0, (2,)).contains(Corridor().reset(seed=1)[0])
