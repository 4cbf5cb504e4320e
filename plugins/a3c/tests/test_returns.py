"""Return and advantage targets against hand-computed numbers (one env, and a batch of envs whose
episodes end at different steps), the loss over a batch with a partly idle last row, and the
worker's reward bookkeeping at episode ends in B real gymnasium envs (termination bootstraps from
0, truncation from V(s'))."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import pytest
import torch

from rlplug_a3c.loss import a3c_loss
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


# -- a batch of envs: [T, B] ------------------------------------------------------------------------
# T=4 rows, B=3 envs, gamma 0.9: env 0 terminates at t=1 (a new episode runs on), env 1 is
# truncated at t=2 (its reward there holds the bootstrap 0.9 * V(s_final) = 0.9 * 4), env 2 runs
# through the whole segment.
GAMMA, LAM = 0.9, 0.5
REWARDS = torch.tensor([[1.0, 1.0, 0.0],
                        [2.0, 1.0, 0.0],
                        [1.0, truncation_bootstrap(1.0, 4.0, GAMMA), 0.0],
                        [1.0, 2.0, 1.0]])
DONES = torch.tensor([[0.0, 0.0, 0.0],
                      [1.0, 0.0, 0.0],
                      [0.0, 1.0, 0.0],
                      [0.0, 0.0, 0.0]])
VALUES = torch.tensor([[0.5, 1.0, 0.0],
                       [1.0, 2.0, 0.0],
                       [2.0, 3.0, 0.0],
                       [3.0, 4.0, 0.0]])
BOOTSTRAP = torch.tensor([10.0, 5.0, 2.0])
# n-step returns, worked by hand, column by column (env 0, env 1, env 2):
#   env 0: R3 = 1 + .9*10 = 10, R2 = 1 + .9*10 = 10, R1 = 2 (terminated), R0 = 1 + .9*2 = 2.8
#   env 1: R3 = 2 + .9*5 = 6.5, R2 = 4.6 (truncated: r + .9*V_final), R1 = 1 + .9*4.6 = 5.14,
#          R0 = 1 + .9*5.14 = 5.626
#   env 2: R3 = 1 + .9*2 = 2.8, R2 = 2.52, R1 = 2.268, R0 = 2.0412
RETURNS = torch.tensor([[2.8, 5.626, 2.0412],
                        [2.0, 5.14, 2.268],
                        [10.0, 4.6, 2.52],
                        [10.0, 6.5, 2.8]])
# GAE(0.5): A_t = delta_t + .45 * A_{t+1} within an episode
#   env 0: d3 = 1 + 9 - 3 = 7; d2 = 1 + 2.7 - 2 = 1.7, A2 = 1.7 + .45*7 = 4.85; A1 = 2 - 1 = 1;
#          d0 = 1 + .9 - .5 = 1.4, A0 = 1.4 + .45*1 = 1.85
#   env 1: A3 = 2 + 4.5 - 4 = 2.5; A2 = 4.6 - 3 = 1.6; d1 = 1 + 2.7 - 2 = 1.7, A1 = 1.7 + .72 = 2.42;
#          d0 = 1 + 1.8 - 1 = 1.8, A0 = 1.8 + .45*2.42 = 2.889
#   env 2: A3 = 2.8, A2 = 1.26, A1 = .567, A0 = .25515
GAE = torch.tensor([[1.85, 2.889, 0.25515],
                    [1.0, 2.42, 0.567],
                    [4.85, 1.6, 1.26],
                    [7.0, 2.5, 2.8]])


def test_n_step_returns_per_env_in_a_batch_with_termination_truncation_and_a_running_episode() -> None:
    returns = n_step_returns(REWARDS, DONES, BOOTSTRAP, GAMMA)
    torch.testing.assert_close(returns, RETURNS)
    # each column is the single-env computation of that env
    for b in range(3):
        torch.testing.assert_close(n_step_returns(REWARDS[:, b], DONES[:, b], BOOTSTRAP[b], GAMMA),
                                   RETURNS[:, b])


def test_gae_per_env_in_a_batch_with_termination_truncation_and_a_running_episode() -> None:
    adv = gae_advantages(REWARDS, VALUES, DONES, BOOTSTRAP, GAMMA, LAM)
    torch.testing.assert_close(adv, GAE)
    for b in range(3):
        torch.testing.assert_close(
            gae_advantages(REWARDS[:, b], VALUES[:, b], DONES[:, b], BOOTSTRAP[b], GAMMA, LAM),
            GAE[:, b])


# A cut step budget: env 2 sat out the last row, so its targets bootstrap from V(obs[3, 2]) = 7,
# the value of the observation it would have acted on next, and its last row counts for nothing.
VALID = torch.ones(4, 3, dtype=torch.bool)
VALID[3, 2] = False
IDLE_VALUES = torch.cat([VALUES[:3], torch.tensor([[3.0, 4.0, 7.0]])])
#   env 2: R2 = 0 + .9*7 = 6.3, R1 = 5.67, R0 = 5.103; A2 = 6.3, A1 = 2.835, A0 = 1.27575
IDLE_RETURNS = torch.cat([RETURNS[:, :2], torch.tensor([[5.103], [5.67], [6.3], [7.0]])], 1)
IDLE_GAE = torch.cat([GAE[:, :2], torch.tensor([[1.27575], [2.835], [6.3], [0.0]])], 1)


def test_an_env_idle_on_the_last_row_bootstraps_from_the_observation_it_did_not_act_on() -> None:
    bootstrap = torch.tensor([10.0, 5.0, 7.0])
    torch.testing.assert_close(n_step_returns(REWARDS, DONES, bootstrap, GAMMA, VALID),
                               IDLE_RETURNS)
    torch.testing.assert_close(gae_advantages(REWARDS, IDLE_VALUES, DONES, bootstrap, GAMMA, LAM,
                                              VALID), IDLE_GAE)


@pytest.mark.parametrize("gae_lambda", [None, LAM])
def test_loss_averages_over_stepped_cells_and_takes_the_idle_envs_bootstrap_from_its_last_row(
        gae_lambda: float | None) -> None:
    # values [T+1, B]: rows 0..3 acted on, row 4 after the segment (env 2's entry is never used)
    values = torch.cat([IDLE_VALUES, torch.tensor([[10.0, 5.0, -100.0]])]).requires_grad_()
    log_probs = torch.full((4, 3), -1.0, requires_grad=True)
    entropy = torch.full((4, 3), 0.3)
    terms = a3c_loss(log_probs, entropy, values, REWARDS, DONES, gamma=GAMMA,
                     gae_lambda=gae_lambda, value_coef=0.5, entropy_coef=0.01, valid=VALID)
    if gae_lambda is None:
        returns, advantages = IDLE_RETURNS, IDLE_RETURNS - IDLE_VALUES
    else:
        returns, advantages = IDLE_GAE + IDLE_VALUES, IDLE_GAE
    cells = VALID.flatten()
    expected_policy = advantages.flatten()[cells].mean()  # -mean(-1 * A)
    expected_value = 0.5 * (returns - IDLE_VALUES).flatten()[cells].pow(2).mean()
    torch.testing.assert_close(terms.policy, expected_policy)
    torch.testing.assert_close(terms.value, expected_value)
    torch.testing.assert_close(terms.entropy, torch.tensor(0.3))
    torch.testing.assert_close(terms.total, expected_policy + 0.5 * expected_value - 0.01 * 0.3)
    terms.total.backward()
    assert log_probs.grad is not None and values.grad is not None
    assert log_probs.grad[3, 2] == 0 and values.grad[3, 2] == 0, "an idle cell must not count"
    assert not values.grad[4].any(), "the bootstrap values are constants"


def test_loss_of_a_full_batch_is_the_plain_mean_of_its_terms() -> None:
    values = torch.cat([VALUES, BOOTSTRAP.view(1, 3)])
    log_probs = -torch.arange(12.0).view(4, 3) / 10
    terms = a3c_loss(log_probs, torch.zeros(4, 3), values, REWARDS, DONES, gamma=GAMMA,
                     gae_lambda=None, value_coef=1.0, entropy_coef=0.0)
    advantages = RETURNS - VALUES
    torch.testing.assert_close(terms.policy, -(log_probs * advantages).mean())
    torch.testing.assert_close(terms.value, 0.5 * advantages.pow(2).mean())


# -- the worker on real envs -----------------------------------------------------------------------
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


def _collect(make_worker: Callable[..., A3CWorker], rows: int, envs: int, *overrides: str
             ) -> tuple[A3CWorker, Any, list[list[tuple[Any, bool, bool]]]]:
    worker = make_worker("env=cartpole", f"algo.n_steps={rows}", f"algo.envs_per_worker={envs}",
                         "algo.gamma=0.9", "algo.reward_scale=0.5", *overrides)
    worker.pull()  # act with the global parameters, as the run loop does
    recorders = [StepRecorder(env) for env in worker.envs.envs]
    worker.envs.envs[:] = recorders
    segment, _ = worker.collect(rows * envs)
    return worker, segment, [r.steps for r in recorders]


@pytest.mark.parametrize("envs", [1, 3])
def test_truncated_steps_bootstrap_from_the_final_observation_value(make_worker, envs: int) -> None:
    # CartPole cannot fall within 3 steps, so every episode is cut by the time limit
    worker, segment, per_env = _collect(make_worker, 12, envs, "env.max_episode_steps=3")
    assert segment.rewards.shape == (12, envs)
    for b, steps in enumerate(per_env):
        assert [trunc for _, _, trunc in steps] == [False, False, True] * 4
        assert segment.dones[:, b].tolist() == [0.0, 0.0, 1.0] * 4
        for i, (final_obs, terminated, truncated) in enumerate(steps):
            bootstrap = 0.9 * _value(worker, final_obs) if truncated and not terminated else 0.0
            assert segment.rewards[i, b].item() == pytest.approx(0.5 + bootstrap, abs=1e-5), \
                f"env {b}, step {i}"
    # the bootstrap really is there: V(s_final) of an untrained critic is not ~0
    truncated_rewards = segment.rewards[segment.dones == 1]
    assert (truncated_rewards - 0.5).abs().min() > 1e-3
    # and the targets use it: a truncated step's return is its reward, not the next episode's
    returns = n_step_returns(segment.rewards, segment.dones, torch.zeros(envs), 0.9)
    assert torch.allclose(returns[segment.dones == 1], truncated_rewards)


def test_terminated_steps_do_not_bootstrap_but_truncated_ones_do_in_each_env(make_worker) -> None:
    # with a limit of 16 steps a random CartPole policy falls (terminates) in about half of its
    # episodes and is cut in the others, and the 4 envs end their episodes at different steps
    # (150 steps: about 9 episodes per env, so each env sees both endings)
    worker, segment, per_env = _collect(make_worker, 150, 4, "env.max_episode_steps=16")
    end_rows = []
    for b, steps in enumerate(per_env):
        assert len(steps) == 150
        ends = [(i, obs, term, trunc) for i, (obs, term, trunc) in enumerate(steps) if term or trunc]
        assert any(term for _, _, term, _ in ends)
        assert any(trunc and not term for _, _, term, trunc in ends)
        end_rows.append({i for i, *_ in ends})
        for i, final_obs, terminated, _ in ends:
            assert segment.dones[i, b].item() == 1.0
            expected = 0.5 if terminated else 0.5 + 0.9 * _value(worker, final_obs)
            assert segment.rewards[i, b].item() == pytest.approx(expected, abs=1e-5), \
                f"env {b}, {'terminated' if terminated else 'truncated'} step {i}"
        inner = [i for i, (_, term, trunc) in enumerate(steps) if not (term or trunc)]
        assert torch.allclose(segment.rewards[inner, b], torch.full((len(inner),), 0.5))
        assert not segment.dones[inner, b].any()
        # the next row starts a new episode exactly where this env's episode ended
        assert segment.episode_starts[1:, b].nonzero().flatten().tolist() == sorted(
            i for i in end_rows[b])
    assert len({frozenset(rows) for rows in end_rows}) > 1, "envs should end at different steps"
