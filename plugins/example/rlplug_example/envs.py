"""An env plugin: a corridor the agent must walk to its right end.

Registered through the ``rlplug.envs`` entry point as ``Corridor-v0`` (see ``pyproject.toml``);
``env=corridor`` is its preset (``conf/env/corridor.yaml``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class Corridor(gym.Env):
    """Cells ``0 .. length-1``; the agent starts in the left half and moves left (action 0) or
    right (action 1). Reaching the last cell ends the episode with reward +1 and
    ``info["is_success"] = True``; every step costs ``step_cost``. After ``max_steps`` steps the
    episode is truncated (``is_success`` False).

    Observation: ``[position / (length - 1), steps taken / max_steps]`` in [0, 1].
    """

    metadata = {"render_modes": []}

    def __init__(self, length: int = 12, max_steps: int = 50, step_cost: float = 0.01):
        if length < 2 or max_steps < 1:
            raise ValueError(f"need length >= 2 and max_steps >= 1, got {length} and {max_steps}")
        self.length, self.max_steps, self.step_cost = length, max_steps, step_cost
        self.observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.position = 0
        self.steps = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.position / (self.length - 1), self.steps / self.max_steps],
                        dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)  # seeds self.np_random
        self.position = int(self.np_random.integers(0, self.length // 2))
        self.steps = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        assert self.action_space.contains(action), f"invalid action {action!r}"
        self.position = max(0, self.position + (1 if int(action) == 1 else -1))
        self.steps += 1
        terminated = self.position == self.length - 1
        truncated = not terminated and self.steps >= self.max_steps
        reward = (1.0 if terminated else 0.0) - self.step_cost
        info = {"is_success": terminated} if terminated or truncated else {}
        return self._obs(), reward, terminated, truncated, info
