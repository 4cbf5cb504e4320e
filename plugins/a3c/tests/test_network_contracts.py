"""The A3C plugin's networks keep the Network contract, checked with ``rlplug.testing`` exactly as
a third-party plugin would check its own."""

from __future__ import annotations

import pytest

from rlplug.errors import UserError
from rlplug.testing import check_network
from rlplug_a3c.configs import FeedForwardConfig, LSTMConfig
from rlplug_a3c.networks.feedforward import FeedForwardActorCritic
from rlplug_a3c.networks.lstm import LSTMActorCritic


@pytest.mark.parametrize("cfg", [
    FeedForwardConfig(),
    FeedForwardConfig(share_body=True),
    FeedForwardConfig(hidden_sizes=[16], activation="relu"),
    FeedForwardConfig(hidden_sizes=[]),
], ids=["separate", "shared-body", "one-relu-layer", "linear"])
def test_feedforward_network_keeps_the_network_contract(cfg: FeedForwardConfig) -> None:
    net = check_network(FeedForwardActorCritic, cfg, obs_shape=(5,), policy_dim=4)
    assert not net.is_recurrent


@pytest.mark.parametrize("cfg", [LSTMConfig(lstm_size=16, pre_sizes=[16]),
                                 LSTMConfig(lstm_size=8, pre_sizes=[], post_sizes=[8], share_core=False)],
                         ids=["shared-core", "two-cores"])
def test_lstm_network_keeps_the_network_contract(cfg: LSTMConfig) -> None:
    net = check_network(LSTMActorCritic, cfg, obs_shape=(3,), policy_dim=2)
    assert net.is_recurrent


@pytest.mark.parametrize("cls,cfg", [(FeedForwardActorCritic, FeedForwardConfig()),
                                     (LSTMActorCritic, LSTMConfig())])
def test_networks_refuse_non_flat_observations_with_a_user_error(cls, cfg) -> None:
    with pytest.raises(UserError, match="1-D"):
        cls((4, 4), 2, cfg)
