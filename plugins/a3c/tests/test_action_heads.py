"""Action heads: log-probabilities and entropies equal torch.distributions' on the same numbers,
samples follow the policy, and actions reach the env inside its space."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Normal

from rlplug_a3c.action_heads import CategoricalHead, GaussianHead, make_action_head


def test_categorical_log_prob_and_entropy_match_torch_distributions() -> None:
    head = CategoricalHead(gym.spaces.Discrete(4))
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    actions = torch.tensor([0, 1, 2, 3, 1, 2])
    log_prob, entropy = head.log_prob_entropy(logits, actions)
    reference = Categorical(logits=logits)
    assert torch.allclose(log_prob, reference.log_prob(actions), atol=1e-6)
    assert torch.allclose(entropy, reference.entropy(), atol=1e-6)


def test_categorical_samples_follow_the_policy_and_respect_the_space_start() -> None:
    space = gym.spaces.Discrete(3, start=-1)
    head = CategoricalHead(space)
    logits = torch.log(torch.tensor([0.2, 0.5, 0.3]))
    generator = torch.Generator().manual_seed(1)
    # one call samples a whole batch of envs: [B, n] logits -> [B] actions
    actions, env_actions = head.sample(logits.expand(4000, 3), generator)
    assert actions.shape == (4000,) and len(env_actions) == 4000
    assert all(type(a) is int for a in env_actions)  # Python ints: Discrete.contains' fast path
    assert np.array_equal(env_actions, actions.numpy() - 1)
    assert all(space.contains(a) for a in env_actions[:50])
    counts = np.bincount(actions.numpy(), minlength=3)
    assert np.allclose(counts / counts.sum(), [0.2, 0.5, 0.3], atol=0.03)
    assert head.mode(logits) == 0  # argmax index 1, shifted by start=-1


def test_each_env_of_a_batch_samples_from_its_own_logits() -> None:
    head = CategoricalHead(gym.spaces.Discrete(3))
    logits = torch.tensor([[0.0, -50.0, -50.0], [-50.0, 0.0, -50.0], [-50.0, -50.0, 0.0]])
    actions, _ = head.sample(logits.repeat(100, 1), torch.Generator().manual_seed(0))
    assert actions.tolist() == [0, 1, 2] * 100


def _gaussian(low: list[float], high: list[float], min_std: float = 1e-3,
              init_std: float = 0.7, max_std: float = 1.0) -> GaussianHead:
    space = gym.spaces.Box(np.array(low, np.float32), np.array(high, np.float32))
    return GaussianHead(space, min_std, init_std, max_std)


def test_gaussian_log_prob_and_entropy_match_torch_normal() -> None:
    head = _gaussian([-2.0, 0.0], [2.0, 1.0], min_std=0.05)
    g = torch.Generator().manual_seed(2)
    params = torch.randn(5, 4, generator=g)
    actions = torch.randn(5, 2, generator=g)
    mean = torch.tanh(params[:, :2])
    std = 0.05 + (1.0 - 0.05) * torch.sigmoid(params[:, 2:] + head.std_shift)
    reference = Normal(mean, std)
    log_prob, entropy = head.log_prob_entropy(params, actions)
    assert torch.allclose(log_prob, reference.log_prob(actions).sum(-1), atol=1e-5)
    assert torch.allclose(entropy, reference.entropy().sum(-1), atol=1e-5)


def test_gaussian_starts_at_init_std_and_its_std_stays_within_min_and_max_std() -> None:
    head = _gaussian([-1.0], [1.0], min_std=0.01, init_std=0.7, max_std=1.2)
    _, entropy = head.log_prob_entropy(torch.zeros(1, 2), torch.zeros(1, 1))
    assert entropy.item() == pytest.approx(Normal(0.0, 0.7).entropy().item(), abs=1e-5)
    _, entropy = head.log_prob_entropy(torch.tensor([[0.0, -1e4]]), torch.zeros(1, 1))
    assert entropy.item() == pytest.approx(Normal(0.0, 0.01).entropy().item(), abs=1e-5)
    # an exploding raw deviation (what an entropy bonus drives) stays at max_std
    _, entropy = head.log_prob_entropy(torch.tensor([[0.0, 1e4]]), torch.zeros(1, 1))
    assert entropy.item() == pytest.approx(Normal(0.0, 1.2).entropy().item(), abs=1e-5)


def test_gaussian_actions_map_onto_the_env_bounds_and_are_clipped() -> None:
    head = _gaussian([-2.0, 0.0], [2.0, 1.0])
    assert np.allclose(head.to_env(np.array([-1.0, -1.0])), [-2.0, 0.0])
    assert np.allclose(head.to_env(np.array([1.0, 1.0])), [2.0, 1.0])
    assert np.allclose(head.to_env(np.array([0.0, 0.0])), [0.0, 0.5])
    assert np.allclose(head.to_env(np.array([7.0, -9.0])), [2.0, 0.0])
    assert np.allclose(head.mode(torch.zeros(4)), [0.0, 0.5])


def test_gaussian_samples_stay_in_the_space_and_keep_its_shape() -> None:
    space = gym.spaces.Box(-3.0, 1.0, shape=(2, 1), dtype=np.float32)
    head = make_action_head(space, 1e-3, 0.7, 1.0)
    generator = torch.Generator().manual_seed(3)
    actions, env_actions = head.sample(torch.zeros(200, 4), generator)  # 200 envs at once
    assert actions.shape == (200, 2)
    assert env_actions.shape == (200, 2, 1)
    assert all(space.contains(a.astype(np.float32)) for a in env_actions)
    assert actions.std(0).min() > 0.5, "every env gets its own noise"
    # each env's sample is its mean plus noise: a mean of -1 in env 0 and +1 in env 1
    params = torch.tensor([[-20.0, -20.0, -1e4, -1e4], [20.0, 20.0, -1e4, -1e4]])
    _, env_actions = head.sample(params, generator)
    assert np.allclose(env_actions[0], -3.0, atol=0.01) and np.allclose(env_actions[1], 1.0, atol=0.01)


def test_unsupported_action_spaces_are_refused() -> None:
    with pytest.raises(TypeError, match="MultiDiscrete"):
        make_action_head(gym.spaces.MultiDiscrete([2, 3]), 1e-3, 0.7, 1.0)
