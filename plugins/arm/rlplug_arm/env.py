"""A planar two-link robot arm that must bring its fingertip onto a goal and hold it there.

Modelled on the robot-arm experiment of the A3C tutorial this project grew from. The plane is
400 x 400 units with the arm's base at its centre (200, 200); y points up. Both links are 100
units long. Joint 1 turns link 1 about the base (its angle is measured from the x axis); joint 2
turns link 2 about the elbow (its angle is measured from link 1, as on a real arm).

- Action: the two joints' angular velocities, each clipped to [-1, 1]; a step advances each angle
  by action x 0.1 (kept in [0, 2 pi)).
- Observation (7 numbers): 1.0 while the fingertip is on the goal (else 0.0), then the offsets
  (x, y) from the goal of the elbow, of the fingertip and of the base, each divided by 200.
- Reward: -distance(fingertip, goal) / 200; +1 on every step the fingertip is within 15 units of
  the goal; on the 51st consecutive step on the goal (more than 50) another +10, and the episode
  terminates: a success (``info["is_success"]`` is True). After 300 steps it is truncated
  (``is_success`` False). ``is_success`` is in the info of the episode's last step only.
- Modes: ``easy``: the goal is fixed at (250, 303) and the joint angles start at random;
  ``hard``: the joint angles start at random and the goal is drawn uniformly from
  [100, 300] x [100, 300] every episode (always within reach: at most 142 units from the base).

``reset(options={"angles": (a1, a2), "goal": (x, y)})`` sets the pose and/or the goal (tests,
demonstrations). ``render_mode="rgb_array"`` draws a 400 x 400 frame with numpy alone (no display,
no OpenGL); ``"human"`` shows it in a pygame window and needs pygame.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from rlplug_arm import drawing

SIZE = 400.0  # the plane is SIZE x SIZE units
BASE = (SIZE / 2, SIZE / 2)
LINK_LENGTHS = (100.0, 100.0)
DT = 0.1  # angle change per step at angular velocity 1
GOAL_RADIUS = 15.0  # the fingertip is on the goal when at most this far from it
HOLD_STEPS = 50  # success after MORE than this many consecutive steps on the goal
SUCCESS_BONUS = 10.0
ON_GOAL_BONUS = 1.0
SCALE = 200.0  # observation offsets and the distance penalty are divided by this
MAX_STEPS = 300
EASY_GOAL = (250.0, 303.0)
HARD_GOAL_RANGE = (100.0, 300.0)
MODES = ("easy", "hard")


def forward_kinematics(angles: tuple[float, float]) -> tuple[tuple[float, float], tuple[float, float]]:
    """(elbow, fingertip) positions for joint angles (joint 2 relative to link 1)."""
    a1, a2 = angles
    elbow = (BASE[0] + LINK_LENGTHS[0] * math.cos(a1), BASE[1] + LINK_LENGTHS[0] * math.sin(a1))
    tip = (elbow[0] + LINK_LENGTHS[1] * math.cos(a1 + a2),
           elbow[1] + LINK_LENGTHS[1] * math.sin(a1 + a2))
    return elbow, tip


class ArmEnv(gym.Env):
    """The robot arm (see the module docstring). ``mode`` is ``"easy"`` or ``"hard"``;
    ``max_steps`` is the truncation limit (300 in the tutorial)."""

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 30}

    def __init__(self, mode: str = "easy", max_steps: int = MAX_STEPS,
                 render_mode: str | None = None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, "
                             f"got {render_mode!r}")
        self.mode, self.max_steps, self.render_mode = mode, max_steps, render_mode
        # offsets divided by 200: the elbow and the fingertip lie within 200 units of the base, the
        # goal within the square [100, 303]^2, so every offset is below 2 in absolute value
        high = np.array([1.0] + [2.0] * 6, dtype=np.float32)
        low = -high
        low[0] = 0.0
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self.angles = (0.0, 0.0)
        self.goal = EASY_GOAL
        self.steps = 0
        self.hold = 0  # consecutive steps on the goal
        self._window: Any = None
        if render_mode == "human":
            self._window = drawing.Window(int(SIZE), self.metadata["render_fps"])

    # -- state -------------------------------------------------------------------------------
    def distance(self) -> float:
        """The fingertip's distance to the goal."""
        _, tip = forward_kinematics(self.angles)
        return math.hypot(tip[0] - self.goal[0], tip[1] - self.goal[1])

    def _observation(self) -> np.ndarray:
        elbow, tip = forward_kinematics(self.angles)
        gx, gy = self.goal
        on_goal = math.hypot(tip[0] - gx, tip[1] - gy) <= GOAL_RADIUS
        return np.array([1.0 if on_goal else 0.0,
                         (elbow[0] - gx) / SCALE, (elbow[1] - gy) / SCALE,
                         (tip[0] - gx) / SCALE, (tip[1] - gy) / SCALE,
                         (BASE[0] - gx) / SCALE, (BASE[1] - gy) / SCALE], dtype=np.float32)

    # -- the gymnasium API -------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)  # seeds self.np_random
        options = options or {}
        a1, a2 = self.np_random.uniform(0.0, 2 * math.pi, size=2)
        self.angles = (float(a1), float(a2))
        if self.mode == "hard":
            x, y = self.np_random.uniform(*HARD_GOAL_RANGE, size=2)
            self.goal = (float(x), float(y))
        else:
            self.goal = EASY_GOAL
        if "angles" in options:
            a1, a2 = options["angles"]
            self.angles = (float(a1) % (2 * math.pi), float(a2) % (2 * math.pi))
        if "goal" in options:
            x, y = options["goal"]
            self.goal = (float(x), float(y))
        self.steps = 0
        self.hold = 0
        if self.render_mode == "human":
            self.render()
        return self._observation(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        two_pi = 2 * math.pi
        self.angles = ((self.angles[0] + float(action[0]) * DT) % two_pi,
                       (self.angles[1] + float(action[1]) * DT) % two_pi)
        self.steps += 1
        distance = self.distance()
        reward = -distance / SCALE
        terminated = False
        if distance <= GOAL_RADIUS:
            reward += ON_GOAL_BONUS
            self.hold += 1
            if self.hold > HOLD_STEPS:
                reward += SUCCESS_BONUS
                terminated = True
        else:
            self.hold = 0
        truncated = not terminated and self.steps >= self.max_steps
        info: dict[str, Any] = {"distance": distance}
        if terminated or truncated:
            info["is_success"] = terminated
        if self.render_mode == "human":
            self.render()
        return self._observation(), reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """An RGB frame (``rgb_array``: returned; ``human``: shown in the window)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; make the env with "
                            "render_mode='rgb_array'")
            return None
        elbow, tip = forward_kinematics(self.angles)
        frame = drawing.draw_arm(int(SIZE), BASE, elbow, tip, self.goal, GOAL_RADIUS,
                                 on_goal=self.distance() <= GOAL_RADIUS)
        if self.render_mode == "human":
            self._window.show(frame)
            return None
        return frame

    def close(self) -> None:
        if self._window is not None:
            self._window.close()
            self._window = None


def hard_arm(**kwargs: Any) -> ArmEnv:
    """The arm in hard mode (a random goal every episode): the ``RlplugArmHard-v0`` entry point,
    an example of a factory function as an env plugin's entry point."""
    return ArmEnv(mode="hard", **kwargs)
