"""B environments stepped together, with same-step autoreset (algorithm-agnostic).

:class:`VectorEnv` builds ``num_envs`` copies of the env named by an :class:`EnvConfig` (through
:func:`rlplug.envs.make_env`, so every rlplug wrapper applies) and steps them in one call:
observations come back stacked as one ``[B, *obs_shape]`` float32 array, rewards and flags as
``[B]`` arrays. An env whose episode ended in a step (terminated or truncated) is reset in that
same step: its row of ``obs`` is already the next episode's first observation, and the episode's
last observation and info are in ``final_obs`` / ``final_info`` (keyed by env index), which is
what truncation bootstrapping (``V(final obs)``) and episode statistics need.

``step(actions, num=k)`` steps only the first ``k`` envs (the others keep their state): a worker
whose last step budget covers only part of a row acts in just that many envs.

Why a loop of our own and not ``gymnasium.vector.SyncVectorEnv(autoreset_mode=SAME_STEP)``: the
same work with less per-step bookkeeping (no info-dict merging, no copy of the batch, results
written into preallocated arrays). Measured on the project's 2-core machine (one core, random
actions, rlplug's ``make_env`` envs, 200,000 steps, best of 3, while other jobs shared the machine
(load about 3), so compare the columns, not the absolute numbers; ``python -m rlplug.vector_env``
repeats it):

    | env         | B  | SyncVectorEnv SAME_STEP | VectorEnv (this) |
    |-------------|----|-------------------------|------------------|
    | Pendulum-v1 | 1  | 39,800                  | 60,000           |
    | Pendulum-v1 | 16 | 64,500                  | 74,400           |
    | CartPole-v1 | 1  | 50,500                  | 108,300          |
    | CartPole-v1 | 16 | 67,300                  | 103,400          |

(env steps/s summed over the B envs.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from rlplug.config import EnvConfig
from rlplug.envs import make_env


def env_seeds(seed: int, num_envs: int) -> list[int]:
    """A seed per env: env 0 gets ``seed`` itself (so one env behaves as a lone env seeded with
    ``seed``), the others distinct seeds derived from it."""
    extra = np.random.SeedSequence(seed).spawn(num_envs - 1) if num_envs > 1 else []
    return [seed] + [int(s.generate_state(1)[0]) for s in extra]


@dataclass
class VectorStep:
    """What one :meth:`VectorEnv.step` returns, for the ``n`` envs that were stepped.

    ``obs[i]`` is the observation to act on next (the new episode's first one where env ``i``'s
    episode ended); ``final_obs[i]`` / ``final_info[i]`` hold the ended episode's last observation
    and info, only for those envs. The arrays are reused by the next step: copy what you keep.
    """

    obs: np.ndarray  # [n, *obs_shape] float32
    rewards: np.ndarray  # [n] float64
    terminated: np.ndarray  # [n] bool
    truncated: np.ndarray  # [n] bool
    final_obs: dict[int, np.ndarray] = field(default_factory=dict)
    final_info: dict[int, dict[str, Any]] = field(default_factory=dict)


class VectorEnv:
    """``num_envs`` envs from ``make_env(cfg)``, stepped together with same-step autoreset."""

    def __init__(self, cfg: EnvConfig, num_envs: int):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.envs: list[gym.Env] = []
        try:
            for _ in range(num_envs):
                self.envs.append(make_env(cfg))
        except BaseException:
            self.close()
            raise
        self.num_envs = num_envs
        first = self.envs[0]
        self.observation_space = first.observation_space
        self.action_space = first.action_space
        shape = tuple(first.observation_space.shape)
        self._obs = np.zeros((num_envs, *shape), dtype=np.float32)
        self._rewards = np.zeros(num_envs, dtype=np.float64)
        self._terminated = np.zeros(num_envs, dtype=bool)
        self._truncated = np.zeros(num_envs, dtype=bool)

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Reset every env (env ``i`` with ``env_seeds(seed, B)[i]`` if a seed is given, and its
        action space seeded alike); returns a copy of the stacked first observations and the
        infos."""
        seeds: list[int | None] = env_seeds(seed, self.num_envs) if seed is not None else [None] * self.num_envs
        infos = []
        for i, (env, env_seed) in enumerate(zip(self.envs, seeds, strict=True)):
            obs, info = env.reset(seed=env_seed)
            if env_seed is not None:
                env.action_space.seed(env_seed)
            self._obs[i] = obs
            infos.append(info)
        return self._obs.copy(), infos

    def step(self, actions: Any, num: int | None = None) -> VectorStep:
        """Step env ``i`` with ``actions[i]`` for the first ``num`` envs (default: all); an env
        whose episode ends is reset at once (see :class:`VectorStep`)."""
        n = self.num_envs if num is None else num
        obs, rewards = self._obs, self._rewards
        terminated, truncated = self._terminated, self._truncated
        final_obs: dict[int, np.ndarray] = {}
        final_info: dict[int, dict[str, Any]] = {}
        envs = self.envs
        for i in range(n):
            o, r, term, trunc, info = envs[i].step(actions[i])
            rewards[i] = r
            terminated[i] = term
            truncated[i] = trunc
            if term or trunc:
                final_obs[i] = np.asarray(o, dtype=np.float32)
                final_info[i] = info
                o, _ = envs[i].reset()
            obs[i] = o
        return VectorStep(obs[:n], rewards[:n], terminated[:n], truncated[:n], final_obs, final_info)

    def close(self) -> None:
        for env in self.envs:
            env.close()


# -- the measurement quoted in the module docstring ---------------------------------------------
def _measure(env_id: str, num_envs: int, steps: int = 200_000, repeats: int = 3) -> tuple[float, float]:
    """(SyncVectorEnv SAME_STEP steps/s, VectorEnv steps/s) with random actions on one core."""
    # Only this measurement (python -m rlplug.vector_env) needs these: kept out of training runs.
    import time

    from gymnasium.vector import AutoresetMode, SyncVectorEnv  # (see above)

    cfg = EnvConfig(id=env_id)
    rows = steps // num_envs
    own = VectorEnv(cfg, num_envs)
    own.reset(seed=0)
    sync = SyncVectorEnv([lambda: make_env(cfg) for _ in range(num_envs)],
                         autoreset_mode=AutoresetMode.SAME_STEP)
    sync.reset(seed=0)
    space = own.action_space
    actions = [np.stack([space.sample() for _ in range(num_envs)]) for _ in range(64)]
    best_sync = best_own = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for k in range(rows):
            sync.step(actions[k % 64])
        best_sync = max(best_sync, rows * num_envs / (time.perf_counter() - start))
        start = time.perf_counter()
        for k in range(rows):
            own.step(actions[k % 64])
        best_own = max(best_own, rows * num_envs / (time.perf_counter() - start))
    sync.close()
    own.close()
    return best_sync, best_own


if __name__ == "__main__":
    for env_id in ("Pendulum-v1", "CartPole-v1"):
        for b in (1, 16):
            sync_sps, own_sps = _measure(env_id, b)
            print(f"{env_id:12s} B={b:<3d} SyncVectorEnv {sync_sps:10,.0f}  VectorEnv {own_sps:10,.0f}",
                  flush=True)
