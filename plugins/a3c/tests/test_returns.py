"""Return and advantage targets against hand-computed numbers, and the worker's reward bookkeeping
at episode ends on a real gymnasium env (termination bootstraps from 0, truncation from V(s'))."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import pytest
import torch

from rlplug_a3c.returns import gae_advantages, n_step_returns, truncation_bootstrap
from rlplug_a3c.worker import A3CWorker


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def test_n_step_returns_bootstrap_from_the_value_after_the_segment() -> None:
    # gamma 0.9, bootstrap 10: R2 = 3 + 0.9*10 = 12, R1 = 2 + 0.9*12 = 12.8, R0 = 1 + 0.9*12.8
    returns = n_step_returns(t(1, 2, 3), t(0, 0, 0), torch.tensor(10.0), gamma=0.9)
    assert torch.allclose(returns, t(12.52, 12.8, 12.0))


def test_termination_mid_segment_cuts_the_return_and_ignores_what_follows() -> None:
    # the episode ends at t=1: R1 = r1 only; R0 = 1 + 0.5*1; t=2,3 belong to the next episode
    returns = n_step_returns(t(1, 1, 1, 1), t(0, 1, 0, 0), torch.tensor(5.0), gamma=0.5)
    assert torch.allclose(returns, t(1.5, 1.0, 2.75, 3.5))


def test_episode_end_on_the_last_step_ignores_the_bootstrap() -> None:
    returns = n_step_returns(t(1, 2), t(0, 1), torch.tensor(100.0), gamma=0.9)
    assert torch.allclose(returns, t(1 + 0.9 * 2, 2))


def test_truncation_bootstrap_adds_the_discounted_final_value() -> None:
    assert truncation_bootstrap(1.0, 4.0, 0.9) == pytest.approx(4.6)
    # a truncated step inside a segment: its return is r + gamma*V(s_final), not the next episode's
    rewards = t(1, truncation_bootstrap(1.0, 4.0, 0.9), 1)
    returns = n_step_returns(rewards, t(0, 1, 0), torch.tensor(2.0), gamma=0.9)
    assert torch.allclose(returns, t(1 + 0.9 * 4.6, 4.6, 1 + 0.9 * 2))


def test_gae_matches_a_hand_computed_example() -> None:
    # delta1 = 0 + 0.9*1.0 - 0.2 = 0.7; delta0 = 1 + 0.9*0.2 - 0.5 = 0.68
    # A1 = 0.7; A0 = 0.68 + 0.9*0.5*0.7 = 0.995
    adv = gae_advantages(t(1, 0), t(0.5, 0.2), t(0, 0), torch.tensor(1.0), gamma=0.9, lam=0.5)
    assert torch.allclose(adv, t(0.995, 0.7))


def _random_segment(seed: int, length: int = 7) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(length, generator=g)
    values = torch.randn(length, generator=g)
    dones = (torch.rand(length, generator=g) < 0.3).float()
    bootstrap = torch.randn((), generator=g)
    return rewards, values, dones, bootstrap


@pytest.mark.parametrize("seed", range(5))
def test_gae_with_lambda_1_equals_n_step_advantages(seed: int) -> None:
    rewards, values, dones, bootstrap = _random_segment(seed)
    expected = n_step_returns(rewards, dones, bootstrap, 0.97) - values
    adv = gae_advantages(rewards, values, dones, bootstrap, gamma=0.97, lam=1.0)
    assert torch.allclose(adv, expected, atol=1e-5)


@pytest.mark.parametrize("seed", range(5))
def test_gae_with_lambda_0_equals_one_step_td_errors(seed: int) -> None:
    rewards, values, dones, bootstrap = _random_segment(seed)
    next_values = torch.cat([values[1:], bootstrap.view(1)])
    expected = rewards + 0.97 * next_values * (1 - dones) - values
    adv = gae_advantages(rewards, values, dones, bootstrap, gamma=0.97, lam=0.0)
    assert torch.allclose(adv, expected, atol=1e-6)


# -- the worker on a real env ----------------------------------------------------------------------
class StepRecorder(gym.Wrapper):
    """Passes everything through and remembers each step's (next obs, terminated, truncated)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.steps: list[tuple[Any, bool, bool]] = []

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps.append((obs.copy(), bool(terminated), bool(truncated)))
        return obs, reward, terminated, truncated, info


def _value(worker: A3CWorker, obs: Any) -> float:
    with torch.no_grad():
        _, value, _ = worker.net(torch.as_tensor(obs, dtype=torch.float32).view(1, 1, -1),
                                 worker.net.initial_state(1), torch.zeros(1, 1))
    return float(value)


def _collect(make_worker: Callable[..., A3CWorker], steps: int, *overrides: str
             ) -> tuple[A3CWorker, Any, list[tuple[Any, bool, bool]]]:
    worker = make_worker("env=cartpole", f"algo.n_steps={steps}", "algo.gamma=0.9",
                         "algo.reward_scale=0.5", *overrides)
    worker.pull()  # act with the global parameters, as the run loop does
    recorder = StepRecorder(worker.env)
    worker.env = recorder
    segment, _ = worker.collect(steps)
    return worker, segment, recorder.steps


def test_truncated_steps_bootstrap_from_the_final_observation_value(make_worker) -> None:
    # CartPole cannot fall within 3 steps, so every episode is cut by the time limit
    worker, segment, steps = _collect(make_worker, 12, "env.max_episode_steps=3")
    assert [trunc for _, _, trunc in steps] == [False, False, True] * 4
    assert segment.dones.tolist() == [0.0, 0.0, 1.0] * 4
    for i, (final_obs, terminated, truncated) in enumerate(steps):
        expected = 0.5 + (0.9 * _value(worker, final_obs) if truncated and not terminated else 0.0)
        assert segment.rewards[i].item() == pytest.approx(expected, abs=1e-5), f"step {i}"
    # the bootstrap really is there: V(s_final) of an untrained critic is not ~0
    truncated_rewards = segment.rewards[segment.dones == 1]
    assert (truncated_rewards - 0.5).abs().min() > 1e-3
    # and the targets use it: a truncated step's return is its reward, not the next episode's
    returns = n_step_returns(segment.rewards, segment.dones, torch.tensor(0.0), 0.9)
    assert torch.allclose(returns[segment.dones == 1], truncated_rewards)


def test_terminated_steps_do_not_bootstrap_but_truncated_ones_do(make_worker) -> None:
    # with a limit of 12 steps a random CartPole policy both falls (terminates) and gets cut
    worker, segment, steps = _collect(make_worker, 300, "env.max_episode_steps=12")
    ends = [(i, obs, term, trunc) for i, (obs, term, trunc) in enumerate(steps) if term or trunc]
    assert any(term for _, _, term, _ in ends) and any(trunc and not term for _, _, term, trunc in ends)
    for i, final_obs, terminated, _ in ends:
        assert segment.dones[i].item() == 1.0
        if terminated:
            assert segment.rewards[i].item() == pytest.approx(0.5, abs=1e-6), f"terminated step {i}"
        else:
            assert segment.rewards[i].item() == pytest.approx(0.5 + 0.9 * _value(worker, final_obs),
                                                             abs=1e-5), f"truncated step {i}"
    inner = [i for i, (_, term, trunc) in enumerate(steps) if not (term or trunc)]
    assert torch.allclose(segment.rewards[inner], torch.full((len(inner),), 0.5))
