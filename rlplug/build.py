"""Building a run's parts from a validated config: the env's spaces, the algorithm (with its
network) and the executor. The CLI's preflight, training and evaluation all build through here,
so a plugin that fails while being built gets the same one-line error everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from omegaconf import OmegaConf

from rlplug.config import RunConfig
from rlplug.contracts import Algorithm, Executor, Network
from rlplug.envs import EnvSpec
from rlplug.errors import PluginError, UserError
from rlplug.plugins import ALGOS, EXECUTORS, NETWORKS
from rlplug.registry import Registry

T = TypeVar("T")


def worker_seeds(seed: int, workers: int, env_steps: int = 0) -> list[int]:
    """A distinct, reproducible seed per worker (env and torch); resumed runs get fresh ones."""
    sequence = np.random.SeedSequence([seed, env_steps])
    return [int(s.generate_state(1)[0]) for s in sequence.spawn(workers)]


def config_dict(run: RunConfig) -> dict[str, Any]:
    """The resolved config as plain data (for checkpoints, summaries and W&B)."""
    return OmegaConf.to_container(OmegaConf.structured(run), resolve=True)  # type: ignore[return-value]


def call_plugin(registry: Registry[Any], name: str, what: str, build: Callable[[], T]) -> T:
    """Run plugin code (a constructor); an exception it raises becomes one line naming the
    plugin and its distribution. :class:`UserError` passes through as the plugin wrote it."""
    try:
        return build()
    except UserError:
        raise
    except Exception as exc:
        entry = registry.resolve(name)
        first = (str(exc).strip().splitlines() or [""])[0]
        raise PluginError(f"{registry.kind} '{name}' from {entry.distribution} {entry.version} "
                          f"failed while {what}: {type(exc).__name__}: {first}") from exc


class NetworkBuilder:
    """Builds the selected network for the env's spaces: ``builder(policy_dim) -> Network``.

    A plain picklable object (not a closure), because it must reach process workers.
    """

    def __init__(self, cls: type[Network], obs_shape: tuple[int, ...], cfg: Any):
        self.cls, self.obs_shape, self.cfg = cls, obs_shape, cfg

    def __call__(self, policy_dim: int) -> Network:
        net = call_plugin(NETWORKS, self.cfg.name, "building the network",
                          lambda: self.cls(self.obs_shape, policy_dim, self.cfg))
        if not isinstance(net, Network):
            raise PluginError(f"network '{self.cfg.name}' built {type(net).__name__}, not an "
                              f"rlplug Network")
        return net


def build_algorithm(run: RunConfig, spec: EnvSpec) -> Algorithm:
    """The selected algorithm with the selected network, for the env's spaces."""
    algo_cls = ALGOS.get(run.algo.name)
    builder = NetworkBuilder(NETWORKS.get(run.network.name), spec.obs_shape, run.network)
    algo = call_plugin(ALGOS, run.algo.name, "building the algorithm",
                       lambda: algo_cls(run.algo, run.env, spec, builder, run.seed))
    if not isinstance(algo, Algorithm):
        raise PluginError(f"algo '{run.algo.name}' built {type(algo).__name__}, not an rlplug "
                          f"Algorithm")
    return algo


def build_executor(run: RunConfig) -> Executor:
    """The selected executor (its constructor checks its settings)."""
    executor_cls = EXECUTORS.get(run.executor.name)
    return call_plugin(EXECUTORS, run.executor.name, "building the executor",
                       lambda: executor_cls(run.executor))
