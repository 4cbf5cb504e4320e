"""The robot arm against hand-computed values: kinematics, observation, reward, the
hold-for-more-than-50-steps success rule, truncation at 300 steps, seeding, gymnasium's env
checker and rendering."""

from __future__ import annotations

import math
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rlplug.config import EnvConfig
from rlplug.envs import make_env
from rlplug_arm import drawing
from rlplug_arm.env import ArmEnv, forward_kinematics, hard_arm

STILL = np.zeros(2, dtype=np.float32)


def test_forward_kinematics_of_known_poses() -> None:
    # base (200, 200), links 100; joint 2 measured from link 1
    for angles, elbow, tip in [((0.0, 0.0), (300, 200), (400, 200)),
                               ((math.pi / 2, 0.0), (200, 300), (200, 400)),
                               ((math.pi / 2, math.pi / 2), (200, 300), (100, 300)),
                               ((math.pi, math.pi), (100, 200), (200, 200))]:
        got_elbow, got_tip = forward_kinematics(angles)
        assert got_elbow == pytest.approx(elbow, abs=1e-9)
        assert got_tip == pytest.approx(tip, abs=1e-9)


def test_observation_and_reward_of_a_known_pose_and_goal() -> None:
    env = ArmEnv()  # easy: goal (250, 303)
    obs, info = env.reset(seed=0, options={"angles": (math.pi / 2, math.pi / 2)})
    # elbow (200, 300), fingertip (100, 300), base (200, 200); offsets from the goal / 200
    expected = [0.0, -50 / 200, -3 / 200, -150 / 200, -3 / 200, -50 / 200, -103 / 200]
    assert obs == pytest.approx(np.array(expected, dtype=np.float32))
    assert obs.dtype == np.float32 and info == {}
    obs, reward, terminated, truncated, info = env.step(STILL)
    assert reward == pytest.approx(-math.hypot(150, 3) / 200)  # -0.750150
    assert not terminated and not truncated and "is_success" not in info
    # actions are clipped to [-1, 1] and move each angle by action * 0.1 (kept in [0, 2 pi))
    env.step(np.array([5.0, -5.0]))
    assert env.angles == pytest.approx((math.pi / 2 + 0.1, math.pi / 2 - 0.1))
    env.reset(options={"angles": (2 * math.pi - 0.05, 0.0)})
    env.step(np.array([1.0, -1.0]))
    assert env.angles == pytest.approx((0.05, 2 * math.pi - 0.1))


@pytest.mark.parametrize("goal,distance,on_goal", [
    ((400, 200), 0.0, True), ((400, 210), 10.0, True), ((400, 215), 15.0, True),
    ((400, 216), 16.0, False), ((391, 188), 15.0, True)])
def test_the_on_goal_bonus_within_15_units(goal, distance, on_goal) -> None:
    env = ArmEnv()
    obs, _ = env.reset(options={"angles": (0.0, 0.0), "goal": goal})  # fingertip at (400, 200)
    assert obs[0] == float(on_goal)
    _, reward, _, _, info = env.step(STILL)
    assert info["distance"] == pytest.approx(distance)
    assert reward == pytest.approx(-distance / 200 + (1.0 if on_goal else 0.0))


def test_success_after_more_than_50_consecutive_steps_on_the_goal() -> None:
    env = ArmEnv()
    env.reset(options={"angles": (0.0, 0.0), "goal": (400, 200)})
    for step in range(1, 51):
        obs, reward, terminated, truncated, info = env.step(STILL)
        assert (reward, terminated, truncated) == (pytest.approx(1.0), False, False), step
        assert obs[0] == 1.0 and "is_success" not in info
    obs, reward, terminated, truncated, info = env.step(STILL)  # the 51st step on the goal
    assert reward == pytest.approx(11.0)
    assert terminated and not truncated and info["is_success"] is True


def test_leaving_the_goal_restarts_the_count() -> None:
    env = ArmEnv()
    env.reset(options={"angles": (0.0, 0.0), "goal": (400, 200)})
    for _ in range(40):
        env.step(STILL)
    # joint 1 by +0.1: the fingertip moves 2 * 200 * sin(0.05) = 19.99 units, off the goal
    _, reward, *_ = env.step(np.array([1.0, 0.0]))
    assert reward == pytest.approx(-2 * 200 * math.sin(0.05) / 200)
    _, reward, *_ = env.step(np.array([-1.0, 0.0]))  # back on the goal: count 1
    assert reward == pytest.approx(1.0)
    for _ in range(49):
        _, _, terminated, _, _ = env.step(STILL)
        assert not terminated
    _, reward, terminated, _, info = env.step(STILL)  # 51 consecutive steps again
    assert terminated and info["is_success"] and reward == pytest.approx(11.0)


def test_episodes_are_truncated_at_300_steps_without_success() -> None:
    env = ArmEnv()
    env.reset(seed=1, options={"angles": (math.pi, 0.0)})  # fingertip at (0, 200): far away
    for step in range(1, 300):
        _, _, terminated, truncated, info = env.step(STILL)
        assert not terminated and not truncated and "is_success" not in info, step
    _, _, terminated, truncated, info = env.step(STILL)
    assert truncated and not terminated and info["is_success"] is False
    assert make_env(EnvConfig(id="RlplugArm-v0")).spec.max_episode_steps is None  # its own limit


def _episode(env: gym.Env, seed: int | None, actions: np.ndarray) -> list[np.ndarray]:
    obs, _ = env.reset(seed=seed)
    seen = [obs]
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        seen.append(np.append(obs, reward))
        if terminated or truncated:
            break
    return seen


@pytest.mark.parametrize("make", [ArmEnv, hard_arm], ids=["easy", "hard"])
def test_the_same_seed_gives_the_same_episode(make) -> None:
    actions = np.random.default_rng(0).uniform(-1, 1, size=(120, 2))
    first, second = _episode(make(), 7, actions), _episode(make(), 7, actions)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    other = _episode(make(), 8, actions)
    assert not np.array_equal(first[0], other[0])


def test_the_easy_goal_is_fixed_and_the_hard_goal_is_drawn_every_episode() -> None:
    easy, hard = ArmEnv(), hard_arm()
    easy.reset(seed=3)
    hard.reset(seed=3)
    easy_goals, hard_goals, easy_angles = set(), set(), set()
    for _ in range(200):
        easy.reset()
        hard.reset()
        easy_goals.add(easy.goal)
        hard_goals.add(hard.goal)
        easy_angles.add(easy.angles)
    assert easy_goals == {(250.0, 303.0)}
    assert len(easy_angles) == 200  # random initial joint angles
    assert len(hard_goals) == 200
    goals = np.array(sorted(hard_goals))
    assert goals.min() >= 100 and goals.max() <= 300
    assert goals.min() < 110 and goals.max() > 290  # spread over the square


@pytest.mark.filterwarnings("ignore:.*Not able to test alternative render modes")
@pytest.mark.parametrize("make", [ArmEnv, hard_arm], ids=["easy", "hard"])
def test_gymnasium_env_checker_passes(make) -> None:
    check_env(make(render_mode="rgb_array"), skip_render_check=False)


@pytest.mark.parametrize("env_id", ["RlplugArm-v0", "RlplugArmHard-v0"])
def test_env_checker_renders_every_declared_mode_with_pygame_headless(env_id, monkeypatch) -> None:
    pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # a window without a display
    env = make_env(EnvConfig(id=env_id), render_mode="rgb_array").unwrapped
    assert env.spec is not None  # so the checker also makes the env with render_mode="human"
    check_env(env)


def test_rgb_array_frame_has_the_declared_shape_and_draws_the_arm() -> None:
    env = make_env(EnvConfig(id="RlplugArm-v0"), render_mode="rgb_array")
    env.reset(seed=0, options={"angles": (0.0, 0.0), "goal": (250, 303)})
    frame = env.render()
    assert frame.shape == (400, 400, 3) and frame.dtype == np.uint8
    # y points up: plane (x, y) is pixel row 400 - y, column x
    assert tuple(frame[400 - 303, 250]) == drawing.GOAL  # the goal, not reached
    assert tuple(frame[400 - 200, 350]) == drawing.LINK  # link 2, from (300, 200) to (400, 200)
    assert tuple(frame[400 - 200, 300]) == drawing.JOINT  # the elbow
    assert tuple(frame[10, 10]) == drawing.BACKGROUND
    env.reset(options={"angles": (0.0, 0.0), "goal": (392, 210)})
    assert tuple(env.render()[400 - 218, 392]) == drawing.GOAL_REACHED  # the goal turns green


def test_human_rendering_without_pygame_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pygame", None)  # import pygame now raises ImportError
    with pytest.raises(gym.error.DependencyNotInstalled, match="render_mode='human' needs pygame"):
        ArmEnv(render_mode="human")
    with pytest.raises(ValueError, match="render_mode must be one of"):
        ArmEnv(render_mode="ascii")
    with pytest.raises(ValueError, match="mode must be one of easy, hard"):
        ArmEnv(mode="medium")
