"""rlplug.vector_env: B envs stepped together with same-step autoreset, compared step by step with
lone gymnasium envs made and seeded the same way."""

from __future__ import annotations

import numpy as np
import pytest

from rlplug.config import EnvConfig
from rlplug.envs import make_env
from rlplug.vector_env import VectorEnv, env_seeds


def test_env_seeds_keep_the_seed_for_env_0_and_differ_for_the_others() -> None:
    seeds = env_seeds(42, 5)
    assert seeds[0] == 42 and len(set(seeds)) == 5
    assert env_seeds(42, 5) == seeds and env_seeds(42, 1) == [42]
    assert env_seeds(43, 5)[1:] != seeds[1:]


def test_each_env_follows_a_lone_env_and_is_reset_in_the_step_its_episode_ends() -> None:
    cfg = EnvConfig(id="CartPole-v1", max_episode_steps=12)
    vec = VectorEnv(cfg, 3)
    lone = [make_env(cfg) for _ in range(3)]
    obs, _ = vec.reset(seed=11)
    for env, seed, row in zip(lone, env_seeds(11, 3), obs, strict=True):
        first, _ = env.reset(seed=seed)
        assert np.array_equal(first, row)
    rng = np.random.default_rng(0)
    ends = {"terminated": 0, "truncated": 0}
    for _ in range(150):
        actions = rng.integers(0, 2, size=3)
        step = vec.step(actions)
        assert step.obs.shape == (3, 4) and step.obs.dtype == np.float32
        for i, env in enumerate(lone):
            o, r, term, trunc, info = env.step(actions[i])
            assert step.rewards[i] == r
            assert step.terminated[i] == term and step.truncated[i] == trunc
            if term or trunc:
                ends["terminated" if term else "truncated"] += 1
                # the ended episode's last observation and info, the next one's first observation
                assert np.array_equal(step.final_obs[i], o) and step.final_info[i] == info
                o, _ = env.reset()
            else:
                assert i not in step.final_obs and i not in step.final_info
            assert np.array_equal(step.obs[i], o)
    assert ends["terminated"] > 0 and ends["truncated"] > 0
    vec.close()


def test_stepping_only_the_first_envs_leaves_the_others_untouched() -> None:
    vec = VectorEnv(EnvConfig(id="Pendulum-v1"), 4)
    obs, _ = vec.reset(seed=3)
    step = vec.step(np.zeros((4, 1), dtype=np.float32), num=2)
    assert step.obs.shape == (2, 3) and step.rewards.shape == (2,)
    assert not np.array_equal(step.obs, obs[:2])
    after = vec.step(np.zeros((4, 1), dtype=np.float32))
    # envs 2 and 3 took one step in all: their state moved exactly as envs 0 and 1 did in one
    lone = make_env(EnvConfig(id="Pendulum-v1"))
    lone.reset(seed=env_seeds(3, 4)[2])
    expected, *_ = lone.step(np.zeros(1, dtype=np.float32))
    assert np.allclose(after.obs[2], expected)
    vec.close()


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="num_envs"):
        VectorEnv(EnvConfig(id="CartPole-v1"), 0)
