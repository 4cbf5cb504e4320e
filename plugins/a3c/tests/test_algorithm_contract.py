"""A3C keeps the Algorithm contract, checked with ``rlplug.testing.check_algorithm`` exactly as a
third-party algorithm would check its own: feed-forward on a Discrete env, LSTM on a Box env
(where a recurrent state that survives the actor's reset would change the actions)."""

from __future__ import annotations

from rlplug.config import EnvConfig
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
