"""One A3C worker: collect up to n_steps with a local copy of the global network, compute the
loss on the segment, push the gradient through the shared optimizer, pull the new parameters."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from rlplug import messages
from rlplug.contracts import State, WorkerContext
from rlplug.envs import make_env
from rlplug.errors import FatalWorkerError
from rlplug_a3c.flat_params import attach_flat_grad, flatten_parameters
from rlplug_a3c.returns import gae_advantages, n_step_returns, truncation_bootstrap

if TYPE_CHECKING:
    from rlplug_a3c.algorithm import A3C


class NonFiniteError(FatalWorkerError):
    """A loss or gradient became NaN/inf; the run must stop with the last good checkpoint."""


@dataclass
class Segment:
    """Up to n_steps transitions of one worker, with what the update needs to recompute them."""

    obs: torch.Tensor  # [T+1, *obs_shape]: the T observations acted on, then the next one
    episode_starts: torch.Tensor  # [T+1]: 1.0 where obs[t] starts an episode
    actions: torch.Tensor  # [T] or [T, action_dim]
    rewards: torch.Tensor  # [T] training rewards (scaled; truncation bootstrap folded in)
    dones: torch.Tensor  # [T]
    initial_state: State  # the network state before obs[0]


@dataclass
class Losses:
    policy: torch.Tensor
    value: torch.Tensor
    entropy: torch.Tensor
    total: torch.Tensor


class A3CWorker:
    def __init__(self, algo: A3C, ctx: WorkerContext):
        self.algo, self.ctx, self.cfg = algo, ctx, algo.cfg
        self.head = algo.head
        self.env = make_env(algo.env_cfg)
        self.net = algo.build_network(self.head.policy_dim)
        self.params = flatten_parameters(self.net)
        self.grad = attach_flat_grad(self.net)
        self.generator = torch.Generator().manual_seed(ctx.seed)
        torch.manual_seed(ctx.seed)
        n = self.cfg.n_steps
        self.obs_buf = torch.zeros((n + 1, *algo.spec.obs_shape))
        self.start_buf = torch.zeros(n + 1)
        self.no_start = torch.zeros(1, 1)
        # episode bookkeeping
        obs, _ = self.env.reset(seed=ctx.seed)
        self.env.action_space.seed(ctx.seed)
        self.obs = obs
        self.state = self.net.initial_state(1)
        self.episode_start = 1.0
        self.episode_return = 0.0
        self.episode_length = 0

    # -- acting ----------------------------------------------------------------------------
    def collect(self, steps: int) -> tuple[Segment, int]:
        """Act for ``steps`` env steps; returns the segment and the number of finished episodes."""
        cfg, head, net = self.cfg, self.head, self.net
        initial_state = tuple(s.detach() for s in self.state)
        actions, rewards, dones = [], [], []
        finished = 0
        with torch.no_grad():
            for t in range(steps):
                self.obs_buf[t] = torch.from_numpy(self.obs)
                self.start_buf[t] = self.episode_start
                params, _, self.state = net(self.obs_buf[t].view(1, 1, -1), self.state,
                                            self.start_buf[t].view(1, 1))
                action, env_action = head.sample(params[0, 0], self.generator)
                obs, reward, terminated, truncated, _ = self.env.step(env_action)
                self.episode_return += float(reward)
                self.episode_length += 1
                train_reward = (float(reward) + cfg.reward_offset) * cfg.reward_scale
                if truncated and not terminated:
                    _, final_value, _ = net(torch.as_tensor(obs, dtype=torch.float32).view(1, 1, -1),
                                            self.state,
                                            self.no_start)
                    train_reward = truncation_bootstrap(train_reward, float(final_value), cfg.gamma)
                done = terminated or truncated
                actions.append(action)
                rewards.append(train_reward)
                dones.append(float(done))
                if done:
                    finished += 1
                    env_step = self.ctx.counters.env_steps + t + 1
                    self.ctx.send(messages.episode(self.ctx.rank, env_step, self.episode_return,
                                                   self.episode_length))
                    obs, _ = self.env.reset()
                    self.episode_return, self.episode_length = 0.0, 0
                self.obs = obs
                self.episode_start = float(done)
        self.obs_buf[steps] = torch.from_numpy(self.obs)
        self.start_buf[steps] = self.episode_start
        segment = Segment(self.obs_buf[: steps + 1].clone(), self.start_buf[: steps + 1].clone(),
                          head.stack(actions), torch.tensor(rewards), torch.tensor(dones),
                          initial_state)
        return segment, finished

    # -- learning --------------------------------------------------------------------------
    def losses(self, segment: Segment) -> Losses:
        """Recompute the segment from its initial state and build the A3C loss."""
        cfg = self.cfg
        T = segment.rewards.shape[0]
        params, values, _ = self.net(segment.obs.unsqueeze(1), segment.initial_state,
                                     segment.episode_starts.unsqueeze(1))
        params, values = params[:T, 0], values[:, 0]
        bootstrap = values[T].detach()
        step_values = values[:T]
        if cfg.gae_lambda is None:
            returns = n_step_returns(segment.rewards, segment.dones, bootstrap, cfg.gamma)
            advantages = returns - step_values.detach()
        else:
            advantages = gae_advantages(segment.rewards, step_values.detach(), segment.dones,
                                        bootstrap, cfg.gamma, cfg.gae_lambda)
            returns = advantages + step_values.detach()
        if cfg.normalize_advantages and T > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        log_probs, entropy = self.head.log_prob_entropy(params, segment.actions)
        policy_loss = -(log_probs * advantages).mean()
        value_loss = 0.5 * (returns - step_values).pow(2).mean()
        entropy = entropy.mean()
        total = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy
        return Losses(policy_loss, value_loss, entropy, total)

    def learning_rate(self) -> float:
        if self.cfg.lr_schedule == "linear":
            done = self.ctx.counters.env_steps / max(1, self.ctx.total_steps)
            return self.cfg.lr * max(0.0, 1.0 - done)
        return self.cfg.lr

    def update(self, segment: Segment, env_step: int) -> dict[str, float]:
        """Compute the gradient locally, push it to the global network through the shared
        optimizer. Returns the statistics of this update."""
        losses = self.losses(segment)
        self.grad.zero_()
        losses.total.backward()
        grad_norm = float(self.grad.norm())
        loss = float(losses.total.detach())
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            raise NonFiniteError(f"non-finite loss or gradient in worker {self.ctx.rank} at env step "
                                 f"{env_step} (loss {loss}, grad norm {grad_norm}); "
                                 f"lower algo.lr or set algo.max_grad_norm")
        if self.cfg.max_grad_norm is not None and grad_norm > self.cfg.max_grad_norm:
            self.grad.mul_(self.cfg.max_grad_norm / (grad_norm + 1e-6))
        lr = self.learning_rate()
        version = self.ctx.model.push(self.grad, lr)
        # global updates by other workers between this worker's pull and its push
        staleness = max(0, version - 1 - self.pulled_version)
        return {"policy_loss": float(losses.policy.detach()),
                "value_loss": float(losses.value.detach()),
                "entropy": float(losses.entropy.detach()), "grad_norm": grad_norm, "lr": lr,
                "staleness": float(staleness)}

    def pull(self) -> None:
        """Copy the global parameters into the local network (one flat copy)."""
        self.pulled_version = self.ctx.model.pull(self.params)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        ctx, cfg = self.ctx, self.cfg
        stats = TrainStats(ctx.report_every_s)
        try:
            while not ctx.stop_requested():
                steps = ctx.counters.reserve_steps(cfg.n_steps, ctx.total_steps)
                if steps == 0:
                    break
                self.pull()
                segment, finished = self.collect(steps)
                env_step = ctx.counters.add(steps, finished)
                stats.add(self.update(segment, env_step), steps)
                if stats.due():
                    ctx.send(messages.train(ctx.rank, env_step, **stats.flush()))
            if stats.updates:
                ctx.send(messages.train(ctx.rank, ctx.counters.env_steps, **stats.flush()))
        finally:
            self.env.close()


class TrainStats:
    """Averages update statistics between two ``train`` messages."""

    def __init__(self, every_s: float):
        self.every_s = every_s
        self._reset()

    def _reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.updates = 0
        self.steps = 0
        self.since = time.perf_counter()

    def add(self, stats: dict[str, float], steps: int) -> None:
        for key, value in stats.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.updates += 1
        self.steps += steps

    def due(self) -> bool:
        return time.perf_counter() - self.since >= self.every_s

    def flush(self) -> dict[str, float]:
        elapsed = max(time.perf_counter() - self.since, 1e-9)
        out = {k: v / self.updates for k, v in self.sums.items()}
        out["steps_per_s"] = self.steps / elapsed
        out["updates"] = float(self.updates)
        self._reset()
        return out

