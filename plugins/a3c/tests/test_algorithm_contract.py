"""A3C keeps the Algorithm contract, checked with ``rlplug.testing.check_algorithm`` exactly as a
third-party algorithm would check its own: feed-forward on a Discrete env, LSTM on a Box env
(where a recurrent state that survives the actor's reset would change the actions)."""

from __future__ import annotations

from rlplug.config import EnvConfig
from rlplug.evaluation import SIDE_BY_SIDE_MAX, evaluate_policy
from rlplug.testing import check_algorithm
from rlplug_a3c.algorithm import A3C
from rlplug_a3c.configs import A3CConfig, FeedForwardConfig, LSTMConfig
from rlplug_a3c.networks.feedforward import FeedForwardActorCritic
from rlplug_a3c.networks.lstm import LSTMActorCritic


def test_a3c_with_the_feedforward_network_keeps_the_algorithm_contract() -> None:
    algo = check_algorithm(A3C, A3CConfig(), EnvConfig(id="CartPole-v1"),
                           network=FeedForwardActorCritic, network_cfg=FeedForwardConfig())
    assert algo.model.version > 0


def test_a3c_with_the_lstm_network_keeps_the_algorithm_contract() -> None:
    check_algorithm(A3C, A3CConfig(), EnvConfig(id="Pendulum-v1"), network=LSTMActorCritic,
                    network_cfg=LSTMConfig(lstm_size=16, pre_sizes=[16]), episodes=1)


def test_more_episodes_than_fit_side_by_side_are_played_in_groups_with_the_same_returns() -> None:
    """rlplug.evaluation plays at most SIDE_BY_SIDE_MAX episodes side by side (an env each); the
    rest follow in further groups, with their own env seeds, as one after another would."""
    env_cfg = EnvConfig(id="CartPole-v1", max_episode_steps=60)
    algo = check_algorithm(A3C, A3CConfig(), env_cfg, network=FeedForwardActorCritic,
                           network_cfg=FeedForwardConfig())
    episodes = SIDE_BY_SIDE_MAX + 6
    together = evaluate_policy(algo, env_cfg, episodes, seed=5)
    apart = evaluate_policy(algo, env_cfg, episodes, seed=5, side_by_side=False)
    assert len(together.returns) == episodes
    assert together.lengths == apart.lengths and together.returns == apart.returns
    assert len(set(together.lengths)) > 1  # different episodes, not one repeated
