"""An algorithm plugin: REINFORCE with a learned baseline (Williams 1992; Sutton & Barto 13.4),
played by several workers at once.

Each worker plays whole episodes with a local copy of the network, then pushes the episode's
gradient to the shared model (:class:`SharedAdamModel`) and pulls the new parameters.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch.distributions import Categorical, Distribution, Independent, Normal
from torch.nn.utils import clip_grad_norm_, parameters_to_vector, vector_to_parameters

from rlplug import messages
from rlplug.config import EnvConfig
from rlplug.contracts import Actor, Algorithm, EnvSpec, Network, SharedModel, WorkerContext
from rlplug.envs import make_env
from rlplug.errors import FatalWorkerError
from rlplug_example.configs import ReinforceConfig
from rlplug_example.shared_model import SharedAdamModel


class Reinforce(Algorithm):
    def __init__(self, cfg: ReinforceConfig, env_cfg: EnvConfig, spec: EnvSpec,
                 build_network: Callable[[int], Network], seed: int):
        self.cfg, self.env_cfg, self.build_network = cfg, env_cfg, build_network
        self.action_space = spec.action_space
        self.discrete = isinstance(spec.action_space, gym.spaces.Discrete)
        # policy_dim: logits for Discrete(n); means then log-std parameters for Box(d)
        self.policy_dim = (int(spec.action_space.n) if self.discrete
                           else 2 * int(np.prod(spec.action_space.shape)))
        torch.manual_seed(seed)
        net = build_network(self.policy_dim)
        self._model = SharedAdamModel(parameters_to_vector(net.parameters()))

    @property
    def model(self) -> SharedModel:
        return self._model

    # -- the policy ----------------------------------------------------------------------------
    def distribution(self, policy: torch.Tensor) -> Distribution:
        if self.discrete:
            return Categorical(logits=policy)
        mean, log_std = policy.chunk(2, dim=-1)
        return Independent(Normal(mean, log_std.clamp(-5.0, 2.0).exp()), 1)

    def env_action(self, action: torch.Tensor) -> Any:
        if self.discrete:
            return int(action) + int(self.action_space.start)
        # make_env does not rescale Box actions: keep them inside the env's bounds ourselves
        low, high = self.action_space.low, self.action_space.high
        return np.clip(action.numpy().reshape(self.action_space.shape), low, high)

    def local_network(self, model: SharedModel) -> tuple[Network, torch.Tensor]:
        """A network of our own, with the shared parameters pulled into it."""
        net = self.build_network(self.policy_dim)
        flat = torch.zeros(model.num_parameters)
        model.pull(flat)
        vector_to_parameters(flat, net.parameters())
        return net, flat

    # -- one worker ------------------------------------------------------------------------------
    def run_worker(self, ctx: WorkerContext) -> None:
        cfg = self.cfg
        torch.manual_seed(ctx.seed)
        env = make_env(self.env_cfg)
        net, flat = self.local_network(ctx.model)
        obs, _ = env.reset(seed=ctx.seed)
        reserved = 0  # env steps claimed from the run's budget, not taken yet
        taken = 0  # env steps taken, not yet recorded in ctx.counters
        stats: list[dict[str, float]] = []
        last_report = time.monotonic()
        try:
            while not ctx.stop_requested():
                ctx.model.pull(flat)
                vector_to_parameters(flat, net.parameters())
                # Play one episode, keeping the autograd graph of its log-probabilities.
                log_probs, entropies, values, rewards = [], [], [], []
                state, start, done, info = net.initial_state(1), torch.ones(1, 1), False, {}
                while not done:
                    if reserved == 0:
                        reserved = ctx.counters.reserve_steps(cfg.reserve_steps, ctx.total_steps)
                        if reserved == 0:
                            return  # the budget is spent; the unfinished episode is dropped
                    obs_t = torch.as_tensor(obs, dtype=torch.float32)[None, None]  # [T=1, B=1, *obs_shape]
                    policy, value, state = net(obs_t, state, start)
                    dist = self.distribution(policy[0, 0])
                    action = dist.sample()
                    obs, reward, terminated, truncated, info = env.step(self.env_action(action))
                    reserved, taken = reserved - 1, taken + 1
                    done = terminated or truncated
                    log_probs.append(dist.log_prob(action))
                    entropies.append(dist.entropy())
                    values.append(value[0, 0])
                    rewards.append(float(reward))
                    start = torch.zeros(1, 1)
                env_step = ctx.counters.add(taken, episodes=1)
                taken = 0
                ctx.send(messages.episode(ctx.rank, env_step, sum(rewards), len(rewards),
                                          success=info.get("is_success")))
                obs, _ = env.reset()
                stats.append(self.update(ctx, net, log_probs, entropies, values, rewards))
                if time.monotonic() - last_report >= ctx.report_every_s:
                    ctx.send(messages.train(ctx.rank, env_step, **_mean(stats)))
                    stats, last_report = [], time.monotonic()
        finally:  # record the steps taken, give back the steps reserved and not taken
            ctx.counters.add(taken)
            ctx.counters.release_steps(reserved)
            env.close()

    def update(self, ctx: WorkerContext, net: Network, log_probs: list[torch.Tensor],
               entropies: list[torch.Tensor], values: list[torch.Tensor],
               rewards: list[float]) -> dict[str, float]:
        """One gradient from one episode, pushed to the shared model."""
        cfg = self.cfg
        returns, future = [], 0.0
        for reward in reversed(rewards):
            future = reward + cfg.gamma * future
            returns.append(future)
        returns_t = torch.tensor(returns[::-1])
        values_t = torch.stack(values)
        advantages = returns_t - values_t.detach()  # the baseline lowers the variance
        policy_loss = -(torch.stack(log_probs) * advantages).mean()
        value_loss = 0.5 * (returns_t - values_t).pow(2).mean()
        entropy = torch.stack(entropies).mean()
        loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy
        net.zero_grad()
        loss.backward()
        grad_norm = float(clip_grad_norm_(net.parameters(), cfg.max_grad_norm))
        if not math.isfinite(grad_norm):  # a restart cannot fix this: end the run
            raise FatalWorkerError(f"non-finite gradient in worker {ctx.rank}; lower algo.lr")
        grad = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                          for p in net.parameters()])
        ctx.model.push(grad, cfg.lr)
        return {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(),
                "entropy": entropy.item(), "grad_norm": grad_norm}

    # -- evaluation ------------------------------------------------------------------------------
    def actor(self, deterministic: bool = True) -> Actor:
        return ReinforceActor(self, deterministic)


def _mean(stats: list[dict[str, float]]) -> dict[str, float]:
    return {key: sum(s[key] for s in stats) / len(stats) for key in stats[0]}


class ReinforceActor(Actor):
    """Acts in one env with the current shared parameters: the policy's mode, or a sample."""

    def __init__(self, algo: Reinforce, deterministic: bool):
        self.algo, self.deterministic = algo, deterministic
        self.net, _ = algo.local_network(algo.model)
        self.reset()

    def reset(self) -> None:
        self.state, self.start = self.net.initial_state(1), torch.ones(1, 1)

    @torch.no_grad()
    def act(self, obs: Any) -> Any:
        obs_t = torch.as_tensor(obs, dtype=torch.float32)[None, None]
        policy, _, self.state = self.net(obs_t, self.state, self.start)
        self.start = torch.zeros(1, 1)
        dist = self.algo.distribution(policy[0, 0])
        return self.algo.env_action(dist.mode if self.deterministic else dist.sample())
