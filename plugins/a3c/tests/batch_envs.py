"""A deterministic env for the batched-acting tests: ``env.id=batch_envs:Ledger-v0``.

Each episode draws its length (1..12) and integer rewards (0..99) from the env's seeded RNG, so
every episode has its own return. The env ends an episode itself: *terminated* when the drawn
length is reached (``info["is_success"] = True``), *truncated* at ``limit`` steps first
(``info["is_success"] = False``). With ``ledger=<path>`` it appends one JSON line per finished
episode (``tag``: the seed of its first reset, which names the env; ``return``, ``length``,
``success``) and, when the env is closed, a line with the env steps it took in all
(``tag``, ``closed_after_steps``), from any process, so a test can compare what the envs did with
what the run reported. With ``nan_tag`` / ``nan_at`` the env whose tag is ``nan_tag`` returns a NaN observation
at its ``nan_at``-th step (counted over all its episodes).

Importing this module registers the id (also in spawned worker processes, which import it through
the ``module:EnvId`` form when this directory is on ``sys.path``).
"""

from __future__ import annotations

import json
import os
from typing import Any

import gymnasium as gym
import numpy as np

ENV_ID = "Ledger-v0"


class LedgerEnv(gym.Env):
    """Observation ``[episode step, steps left in the drawn length, last reward / 100]``."""

    metadata = {"render_modes": []}

    def __init__(self, ledger: str | None = None, limit: int = 8, nan_tag: int | None = None,
                 nan_at: int = 0):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.ledger, self.limit = ledger, limit
        self.nan_tag, self.nan_at = nan_tag, nan_at
        self.tag: int | None = None
        self.steps = 0
        self._length, self._t, self._return = 1, 0, 0
        self._rewards = np.zeros(12, dtype=np.int64)

    def _obs(self, reward: int = 0) -> np.ndarray:
        return np.array([self._t, self._length - self._t, reward / 100], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if self.tag is None:
            self.tag = seed
        self._length = int(self.np_random.integers(1, 13))
        self._rewards = self.np_random.integers(0, 100, size=12)
        self._t, self._return = 0, 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        reward = int(self._rewards[self._t])
        self._t += 1
        self.steps += 1
        self._return += reward
        terminated = self._t == self._length
        truncated = not terminated and self._t == self.limit
        info: dict[str, Any] = {}
        if terminated or truncated:
            info["is_success"] = terminated
            self._write({"tag": self.tag, "return": self._return, "length": self._t,
                         "success": terminated})
        obs = self._obs(reward)
        if self.tag == self.nan_tag and self.steps == self.nan_at:
            obs[1] = np.nan
        return obs, float(reward), terminated, truncated, info

    def close(self) -> None:
        if self.tag is not None:
            self._write({"tag": self.tag, "closed_after_steps": self.steps})
        super().close()

    def _write(self, row: dict[str, Any]) -> None:
        if self.ledger is None:
            return
        fd = os.open(self.ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(row) + "\n").encode())  # one small append: whole lines
        finally:
            os.close(fd)


if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point=LedgerEnv)
