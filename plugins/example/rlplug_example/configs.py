"""The options this distribution adds, one config dataclass each.

:func:`register` is the ``rlplug.configs`` entry point: storing a dataclass in Hydra's
ConfigStore under a group makes it an option of that group (``algo=reinforce``), with its
defaults; Hydra checks keys and types, ``__post_init__`` checks ranges (one-line errors through
:func:`rlplug.config.require`). The returned search path adds the YAML presets in ``conf/``
(here the env preset ``env=corridor``).
"""

from __future__ import annotations

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore

from rlplug.config import require


@dataclass
class ReinforceConfig:
    name: str = "reinforce"  # the registered algorithm this option selects
    lr: float = 1e-2
    gamma: float = 0.99
    value_coef: float = 0.5  # weight of the baseline's (value) loss
    entropy_coef: float = 0.01
    max_grad_norm: float = 1.0
    reserve_steps: int = 32  # env steps claimed from the run's budget at a time

    def __post_init__(self) -> None:
        require(self.lr > 0, "algo.lr", "must be > 0", self.lr, "algo.lr=0.01")
        require(0 < self.gamma <= 1, "algo.gamma", "must be in (0, 1]", self.gamma, "algo.gamma=0.99")
        require(self.value_coef >= 0, "algo.value_coef", "must be >= 0", self.value_coef,
                "algo.value_coef=0.5")
        require(self.entropy_coef >= 0, "algo.entropy_coef", "must be >= 0", self.entropy_coef,
                "algo.entropy_coef=0.01")
        require(self.max_grad_norm > 0, "algo.max_grad_norm", "must be > 0", self.max_grad_norm,
                "algo.max_grad_norm=1.0")
        require(self.reserve_steps >= 1, "algo.reserve_steps", "must be >= 1", self.reserve_steps,
                "algo.reserve_steps=32")


@dataclass
class GRUConfig:
    name: str = "gru"
    hidden_size: int = 32
    num_layers: int = 1

    def __post_init__(self) -> None:
        require(self.hidden_size >= 1, "network.hidden_size", "must be >= 1", self.hidden_size,
                "network.hidden_size=32")
        require(self.num_layers >= 1, "network.num_layers", "must be >= 1", self.num_layers,
                "network.num_layers=1")


@dataclass
class SimpleThreadsConfig:
    name: str = "simple_threads"
    workers: int = 2  # every executor config has `workers`
    stop_timeout_s: float = 5.0  # how long run() waits for its threads once it stops them

    def __post_init__(self) -> None:
        require(self.workers >= 1, "executor.workers", "must be >= 1", self.workers,
                "executor.workers=2")
        require(self.stop_timeout_s > 0, "executor.stop_timeout_s", "must be > 0",
                self.stop_timeout_s, "executor.stop_timeout_s=5")


def register() -> str:
    """Store the options in Hydra's ConfigStore; return this plugin's config search path."""
    cs = ConfigStore.instance()
    cs.store(group="algo", name="reinforce", node=ReinforceConfig)
    cs.store(group="network", name="gru", node=GRUConfig)
    cs.store(group="executor", name="simple_threads", node=SimpleThreadsConfig)
    return "pkg://rlplug_example.conf"
