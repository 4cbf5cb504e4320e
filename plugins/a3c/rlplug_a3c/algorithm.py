"""A3C: the global actor-critic and shared optimizer that all workers update asynchronously."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rlplug.config import EnvConfig
from rlplug.contracts import Actor, Algorithm, Network, SharedModel, State, WorkerContext
from rlplug.envs import EnvSpec
from rlplug_a3c.action_heads import make_action_head
from rlplug_a3c.configs import A3CConfig
from rlplug_a3c.flat_params import flatten_parameters
from rlplug_a3c.global_model import GlobalModel
from rlplug_a3c.shared_optim import SharedAdam, SharedOptimizer, SharedRMSprop
from rlplug_a3c.worker import A3CWorker


class A3C(Algorithm):
    """Asynchronous advantage actor-critic (Mnih et al. 2016).

    The global network's parameters are one flat tensor in shared memory; the optimizer's
    statistics too (together: :class:`GlobalModel`, the run's shared model). Workers each own
    their envs and a local network copy, and reach the global model only through ``ctx.model``.
    """

    def __init__(self, cfg: A3CConfig, env_cfg: EnvConfig, spec: EnvSpec,
                 build_network: Callable[[int], Network], seed: int):
        self.cfg, self.env_cfg, self.spec = cfg, env_cfg, spec
        self.build_network = build_network
        self.head = make_action_head(spec.action_space, cfg.min_std, cfg.init_std, cfg.max_std)
        torch.manual_seed(seed)
        self.global_net = build_network(self.head.policy_dim)
        self.params = flatten_parameters(self.global_net, shared=True)
        self.optimizer = self._make_optimizer()
        self._model = GlobalModel(self.params, self.optimizer)

    @property
    def model(self) -> SharedModel:
        return self._model

    def _make_optimizer(self) -> SharedOptimizer:
        lr_scale = None
        if self.cfg.critic_lr_scale != 1.0:
            critic = critic_only_mask(self.global_net, self.spec.obs_shape)
            lr_scale = (1.0 + (self.cfg.critic_lr_scale - 1.0) * critic).share_memory_()
        if self.cfg.optimizer == "rmsprop":
            return SharedRMSprop(self.params, self.cfg.rmsprop_alpha, self.cfg.optimizer_eps,
                                 lr_scale)
        betas = (float(self.cfg.adam_betas[0]), float(self.cfg.adam_betas[1]))
        return SharedAdam(self.params, betas, self.cfg.optimizer_eps, lr_scale)

    def run_worker(self, ctx: WorkerContext) -> None:
        # the worker gets what it needs, not the algorithm (nor the main process's global net)
        A3CWorker(ctx, self.cfg, self.env_cfg, self.head, self.build_network).run()

    def actor(self, deterministic: bool = True) -> Actor:
        return A3CActor(self, deterministic)


def critic_only_mask(net: Network, obs_shape: tuple[int, ...]) -> torch.Tensor:
    """A flat 0/1 vector over the network's parameters: 1 where the policy output does not depend
    on the parameter at all (the critic's own layers), found from the autograd graph, so it works
    for any network without naming conventions."""
    params = list(net.parameters())
    policy, _, _ = net(torch.zeros(1, 1, *obs_shape), net.initial_state(1), torch.ones(1, 1))
    grads = torch.autograd.grad(policy.sum(), params, allow_unused=True)
    return torch.cat([torch.full((p.numel(),), float(g is None)) for p, g in zip(params, grads, strict=True)])


class A3CActor(Actor):
    """Acts with the global network: the mode of the policy, or a sample."""

    def __init__(self, algo: A3C, deterministic: bool, seed: int = 0):
        self.net, self.head = algo.global_net, algo.head
        self.deterministic = deterministic
        self.generator = torch.Generator().manual_seed(seed)
        self.reset()

    def reset(self) -> None:
        self.state = self.net.initial_state(1)
        self.start = torch.ones(1, 1)
        self.batch_state: State | None = None  # act_batch's, for its batch of envs

    @torch.no_grad()
    def act(self, obs: Any) -> Any:
        obs_t = torch.as_tensor(obs, dtype=torch.float32).view(1, 1, -1)
        params, self.state = self.net.forward_policy(obs_t, self.state, self.start)
        self.start = torch.zeros(1, 1)
        if self.deterministic:
            return self.head.mode(params[0, 0])
        return self.head.sample(params[0], self.generator)[1][0]

    @torch.no_grad()
    def act_batch(self, obs: Any, starts: Any) -> list[Any]:
        n = len(starts)
        if self.batch_state is None or bool(np.all(starts)):
            self.batch_state = self.net.initial_state(n)
        obs_t = torch.as_tensor(np.asarray(obs), dtype=torch.float32).view(1, n, -1)
        starts_t = torch.as_tensor(np.asarray(starts), dtype=torch.float32).view(1, n)
        params, self.batch_state = self.net.forward_policy(obs_t, self.batch_state, starts_t)
        if self.deterministic:
            return self.head.modes(params[0])
        return list(self.head.sample(params[0], self.generator)[1])
