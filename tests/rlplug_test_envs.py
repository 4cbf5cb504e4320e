"""Small gymnasium envs whose spaces rlplug does not support, for the bad-input tests.

Importing this module registers them; a run names them as ``env.id=rlplug_test_envs:<Id>``
(gymnasium's ``module:id`` form imports the module first, if this directory is on ``sys.path``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

MODULE = "rlplug_test_envs"


class _TinyEnv(gym.Env):
    """A 10-step episode with a 4-float observation and 2 discrete actions; subclasses swap one
    of the spaces."""

    def __init__(self) -> None:
        self.observation_space: Any = spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.action_space: Any = spaces.Discrete(2)
        self._t = 0

    def _obs(self) -> Any:
        return self.observation_space.sample()

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        self._t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self._t += 1
        return self._obs(), 1.0, self._t >= 10, False, {}


class DictObsEnv(_TinyEnv):
    def __init__(self) -> None:
        super().__init__()
        self.observation_space = spaces.Dict({"position": spaces.Box(-1.0, 1.0, (2,), np.float32)})


class TupleObsEnv(_TinyEnv):
    def __init__(self) -> None:
        super().__init__()
        self.observation_space = spaces.Tuple((spaces.Box(-1.0, 1.0, (2,), np.float32),
                                               spaces.Discrete(3)))


class MultiDiscreteActionEnv(_TinyEnv):
    def __init__(self) -> None:
        super().__init__()
        self.action_space = spaces.MultiDiscrete([3, 2])


class ImageObsEnv(_TinyEnv):
    def __init__(self) -> None:
        super().__init__()
        self.observation_space = spaces.Box(0, 255, (16, 16, 3), np.uint8)


for _name, _cls in [("DictObs-v0", DictObsEnv), ("TupleObs-v0", TupleObsEnv),
                    ("MultiDiscreteAction-v0", MultiDiscreteActionEnv),
                    ("ImageObs-v0", ImageObsEnv)]:
    if _name not in gym.registry:
        gym.register(_name, entry_point=_cls)
