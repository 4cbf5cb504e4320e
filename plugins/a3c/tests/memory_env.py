"""A tiny memory task for the LSTM tests: ``env.id=memory_env:CueMemory-v0``.

Each episode shows a cue (+1 or -1) in the first observation only, then ``delay`` blank
observations, then a "decide now" flag. The action taken at the decision step earns +1 if it
matches the cue (action 1 for +1, action 0 for -1) and 0 otherwise; earlier actions do nothing.
A feed-forward policy sees the same observation ``[0, 1]`` at every decision, so it cannot beat
chance (success 0.5); a policy with memory can reach 1.0.

Importing this module registers the id, so rlplug's ``module:EnvId`` form imports it in every
worker, also in spawned processes (they inherit the parent's ``sys.path``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

ENV_ID = "CueMemory-v0"


class CueMemoryEnv(gym.Env):
    """Observation ``[cue or 0, decision flag]``; Discrete(2) actions; ``delay + 2`` steps."""

    metadata = {"render_modes": []}

    def __init__(self, delay: int = 3):
        if delay < 0:
            raise ValueError(f"delay must be >= 0, got {delay}")
        self.delay = delay
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self._cue = 1
        self._t = 0

    def _obs(self) -> np.ndarray:
        cue = float(self._cue) if self._t == 0 else 0.0
        decide = 1.0 if self._t == self.delay + 1 else 0.0
        return np.array([cue, decide], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._cue = 1 if self.np_random.integers(2) else -1
        self._t = 0
        return self._obs(), {"cue": self._cue}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        deciding = self._t == self.delay + 1
        reward = float(int(action) == (1 if self._cue > 0 else 0)) if deciding else 0.0
        self._t += 1
        return self._obs(), reward, deciding, False, {"cue": self._cue}


if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point=CueMemoryEnv)
