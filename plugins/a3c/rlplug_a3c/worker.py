"""One A3C worker: ``B`` envs stepped together (``algo.envs_per_worker``) with a local copy of the
global network. It reserves ``T x B`` env steps of the run's budget (``T = algo.n_steps``), acts
for a ``[T, B]`` segment (one batched forward pass and one batched sample per row), computes the
loss on the whole segment, pushes the gradient through the shared optimizer and pulls the new
parameters.

The worker gets what it needs, not the algorithm: the hosted model (``ctx.model``), the config,
the action head, a network builder and the env config.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from rlplug import messages
from rlplug.config import EnvConfig
from rlplug.contracts import Network, State, WorkerContext
from rlplug.errors import FatalWorkerError
from rlplug.vector_env import VectorEnv, VectorStep
from rlplug_a3c.action_heads import ActionHead
from rlplug_a3c.configs import A3CConfig
from rlplug_a3c.flat_params import attach_flat_grad, flatten_parameters
from rlplug_a3c.loss import LossTerms, a3c_loss
from rlplug_a3c.returns import truncation_bootstrap


class NonFiniteError(FatalWorkerError):
    """A loss or gradient became NaN/inf; the run must stop with the last good checkpoint."""


class NonFiniteObservationError(FatalWorkerError):
    """An env returned a NaN/inf observation: a broken input that no restart can fix."""


@dataclass
class Segment:
    """``T`` rows of ``B`` envs, with what the update needs to recompute them."""

    obs: torch.Tensor  # [T+1, B, *obs_shape]: the T rows acted on, then the next observations
    episode_starts: torch.Tensor  # [T+1, B]: 1.0 where obs[t, b] starts an episode
    actions: torch.Tensor  # [T, B] or [T, B, action_dim]
    rewards: torch.Tensor  # [T, B] training rewards (scaled; truncation bootstrap folded in)
    dones: torch.Tensor  # [T, B]
    initial_state: State  # the network state before obs[0]
    valid: torch.Tensor | None = None  # [T, B] bool: False where an env sat out the last row

    @property
    def steps(self) -> int:
        """Env steps in the segment."""
        return self.rewards.numel() if self.valid is None else int(self.valid.sum())


class A3CWorker:
    """Acts in ``cfg.envs_per_worker`` envs and trains the hosted model ``ctx.model``."""

    def __init__(self, ctx: WorkerContext, cfg: A3CConfig, env_cfg: EnvConfig, head: ActionHead,
                 build_network: Callable[[int], Network]):
        self.ctx, self.cfg, self.head = ctx, cfg, head
        self.num_envs = B = cfg.envs_per_worker
        self.envs = VectorEnv(env_cfg, B)
        try:
            self.net = build_network(head.policy_dim)
            self.params = flatten_parameters(self.net)
            self.grad = attach_flat_grad(self.net)
            self.pulled_version = 0
            self.generator = torch.Generator().manual_seed(ctx.seed)
            torch.manual_seed(ctx.seed)
            T = cfg.n_steps
            obs_shape = tuple(self.envs.observation_space.shape)
            # Segment buffers, reused: the torch tensors and their numpy views share memory, so
            # the env's numpy results land in them with one copy per row.
            self.obs_buf = torch.zeros((T + 1, B, *obs_shape))
            self.start_buf = torch.zeros((T + 1, B))
            self.action_buf = torch.zeros((T, B, *head.action_shape), dtype=head.action_dtype)
            self.obs_np, self.start_np = self.obs_buf.numpy(), self.start_buf.numpy()
            self.reward_np = np.zeros((T, B), dtype=np.float32)
            self.done_np = np.zeros((T, B), dtype=np.float32)
            # per-env episode bookkeeping
            self.obs, _ = self.envs.reset(seed=ctx.seed)
            self._check_finite(self.obs, ctx.counters.env_steps)
            self.starts = np.ones(B, dtype=np.float32)
            self.state = self.net.initial_state(B)
            self.episode_return = np.zeros(B)
            self.episode_length = np.zeros(B, dtype=np.int64)
        except BaseException:
            self.envs.close()
            raise

    # -- acting ----------------------------------------------------------------------------
    def collect(self, steps: int) -> tuple[Segment, int]:
        """Act for ``steps`` env steps (at most ``n_steps`` rows of ``B`` envs; when ``steps`` is
        not a multiple of ``B`` only the first envs step in the last row). Returns the segment
        and the number of episodes that finished in it."""
        B = self.num_envs
        rows = -(-steps // B)
        last = steps - (rows - 1) * B  # envs that step in the last row
        if not 1 <= rows <= self.cfg.n_steps:
            raise ValueError(f"a segment holds 1..{self.cfg.n_steps * B} env steps, got {steps}")
        net, head, envs, generator = self.net, self.head, self.envs, self.generator
        initial_state = self.state
        base = self.ctx.counters.env_steps
        finished = 0
        with torch.no_grad():
            for t in range(rows):
                n = B if t < rows - 1 else last
                self.obs_np[t] = self.obs
                self.start_np[t] = self.starts
                policy, state = net.forward_policy(self.obs_buf[t: t + 1], self.state,
                                                   self.start_buf[t: t + 1])
                actions, env_actions = head.sample(policy[0], generator)
                self.action_buf[t] = actions
                result = envs.step(env_actions, n)
                if n < B:  # the envs that sat this row out keep their state
                    state = tuple(torch.cat([new[:n], old[n:]])
                                  for new, old in zip(state, self.state, strict=True))
                self.state = state
                finished += self._record(t, n, result, base + t * B)
        self.obs_np[rows] = self.obs
        self.start_np[rows] = self.starts
        valid = None
        if last < B:
            valid = torch.ones((rows, B), dtype=torch.bool)
            valid[rows - 1, last:] = False
        segment = Segment(self.obs_buf[: rows + 1].clone(), self.start_buf[: rows + 1].clone(),
                          self.action_buf[:rows].clone(),
                          torch.from_numpy(self.reward_np[:rows].copy()),
                          torch.from_numpy(self.done_np[:rows].copy()), initial_state, valid)
        return segment, finished

    def _record(self, t: int, n: int, result: VectorStep, step_base: int) -> int:
        """Book row ``t``'s results for the ``n`` envs that stepped; returns finished episodes.
        ``step_base + i + 1`` is the run's env step reported for env ``i``."""
        obs = result.obs
        self._check_finite(obs, step_base)
        rewards = result.rewards
        self.episode_return[:n] += rewards
        self.episode_length[:n] += 1
        cfg = self.cfg
        train_rewards = (rewards + cfg.reward_offset) * cfg.reward_scale
        ended = result.terminated | result.truncated
        finished = 0
        if result.final_obs:
            finished = self._end_episodes(result, train_rewards, step_base)
        self.reward_np[t, :n] = train_rewards
        self.done_np[t, :n] = ended
        self.obs[:n] = obs
        self.starts[:n] = ended
        return finished

    def _end_episodes(self, result: VectorStep, train_rewards: np.ndarray, step_base: int) -> int:
        """Truncated episodes bootstrap from V(final obs), computed with each env's state after
        the step; every finished episode is reported with its own return and length."""
        ended = sorted(result.final_obs)
        for i in ended:
            self._check_finite(result.final_obs[i][None], step_base, first_env=i)
        cut = [i for i in ended if result.truncated[i] and not result.terminated[i]]
        if cut:
            final = torch.from_numpy(np.stack([result.final_obs[i] for i in cut]))
            index = torch.tensor(cut)
            _, value, _ = self.net(final.unsqueeze(0), tuple(s[index] for s in self.state),
                                   torch.zeros(1, len(cut)))
            train_rewards[cut] = truncation_bootstrap(train_rewards[cut],
                                                      value[0].double().numpy(), self.cfg.gamma)
        ctx = self.ctx
        for i in ended:
            success = result.final_info[i].get("is_success")
            ctx.send(messages.episode(ctx.rank, step_base + i + 1, float(self.episode_return[i]),
                                      int(self.episode_length[i]),
                                      success=None if success is None else bool(success)))
            self.episode_return[i] = 0.0
            self.episode_length[i] = 0
        return len(ended)

    def _check_finite(self, obs: np.ndarray, step_base: int, first_env: int = 0) -> None:
        """Raise :class:`NonFiniteObservationError` naming the worker, env and env step if any
        observation is NaN/inf (one reduction per row on the fast path)."""
        if math.isfinite(float(obs.sum())):
            return
        bad = ~np.isfinite(obs.reshape(len(obs), -1))
        rows = np.flatnonzero(bad.any(axis=1))
        if not len(rows):  # a finite sum that overflowed: no component is NaN/inf
            return
        i = int(rows[0])
        env, what = first_env + i, "nan" if np.isnan(obs[i]).any() else "inf"
        raise NonFiniteObservationError(
            f"non-finite observation ({what}) from env {env} of worker {self.ctx.rank} at env step "
            f"{step_base + env + 1} (components {np.flatnonzero(bad[i]).tolist()}); rlplug cannot "
            f"train on NaN/inf inputs: fix the env or its wrappers")

    # -- learning --------------------------------------------------------------------------
    def losses(self, segment: Segment, entropy_coef: float | None = None) -> LossTerms:
        """Recompute the segment from its initial state and build the A3C loss (with the entropy
        bonus's coefficient as scheduled now unless ``entropy_coef`` is given)."""
        cfg = self.cfg
        T = segment.rewards.shape[0]
        policy, values, _ = self.net(segment.obs, segment.initial_state, segment.episode_starts)
        log_probs, entropy = self.head.log_prob_entropy(policy[:T], segment.actions)
        return a3c_loss(log_probs, entropy, values, segment.rewards, segment.dones,
                        gamma=cfg.gamma, gae_lambda=cfg.gae_lambda, value_coef=cfg.value_coef,
                        entropy_coef=self.entropy_coef() if entropy_coef is None else entropy_coef,
                        normalize_advantages=cfg.normalize_advantages, valid=segment.valid)

    def learning_rate(self) -> float:
        return self._scheduled(self.cfg.lr, self.cfg.lr_schedule)

    def entropy_coef(self) -> float:
        return self._scheduled(self.cfg.entropy_coef, self.cfg.entropy_schedule)

    def _scheduled(self, value: float, schedule: str) -> float:
        """``value`` as ``schedule`` sets it now: constant, or decaying linearly from ``value`` at
        the first env step to 0 at ``total_steps``."""
        if schedule == "linear":
            done = self.ctx.counters.env_steps / max(1, self.ctx.total_steps)
            return value * max(0.0, 1.0 - done)
        return value

    def update(self, segment: Segment, env_step: int) -> dict[str, float]:
        """Compute the gradient locally, push it to the global network through the shared
        optimizer. Returns the statistics of this update."""
        entropy_coef = self.entropy_coef()
        losses = self.losses(segment, entropy_coef)
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
                "entropy_coef": entropy_coef,
                "staleness": float(staleness)}

    def pull(self) -> None:
        """Copy the global parameters into the local network (one flat copy)."""
        self.pulled_version = self.ctx.model.pull(self.params)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        ctx = self.ctx
        segment_steps = self.cfg.n_steps * self.num_envs
        stats = TrainStats(ctx.report_every_s)
        try:
            while not ctx.stop_requested():
                # the last reservation may be cut short: the run ends at exactly total_steps
                steps = ctx.counters.reserve_steps(segment_steps, ctx.total_steps)
                if steps == 0:
                    break
                try:
                    self.pull()
                    segment, finished = self.collect(steps)
                except BaseException:
                    # a segment that was not finished is not counted: its steps go back to the
                    # budget (the run still ends at total_steps if the worker is restarted)
                    ctx.counters.release_steps(steps)
                    raise
                env_step = ctx.counters.add(steps, finished)
                stats.add(self.update(segment, env_step), steps)
                if stats.due():
                    ctx.send(messages.train(ctx.rank, env_step, **stats.flush()))
            if stats.updates:
                ctx.send(messages.train(ctx.rank, ctx.counters.env_steps, **stats.flush()))
        finally:
            self.envs.close()


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
