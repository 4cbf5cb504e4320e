"""Evaluating a policy: whole episodes with an algorithm's actor, optionally recorded as a video.

Used by training (periodic evaluation, the final video) and by ``python -m rlplug.evaluate``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rlplug.config import EnvConfig
from rlplug.contracts import Actor, Algorithm, supports_act_batch
from rlplug.envs import make_env
from rlplug.errors import UserError


@dataclass
class EvalResult:
    returns: list[float]
    lengths: list[int]
    video: Path | None = None

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))


class _VideoWriter:
    """Streams rgb frames into an mp4 (frames are not kept in memory: a long evaluation of a
    large frame would not fit)."""

    def __init__(self, path: Path, fps: int):
        try:  # imageio is optional (the video extra): imported only to write a video
            import imageio.v2 as imageio
        except ImportError as exc:
            raise UserError("writing a video needs imageio and imageio-ffmpeg: "
                            "pip install 'rlplug[video]'") from exc
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # macro_block_size=1: keep the env's frame size instead of rescaling to multiples of 16.
        self._writer = imageio.get_writer(path, fps=fps, macro_block_size=1)
        self.frames = 0

    def add(self, frame: np.ndarray) -> None:
        self._writer.append_data(np.asarray(frame))
        self.frames += 1

    def close(self) -> None:
        self._writer.close()


SIDE_BY_SIDE_MAX = 64  # episodes played side by side at most (each has an env of its own)


def evaluate_policy(algo: Algorithm, env_cfg: EnvConfig, episodes: int, *, seed: int = 0,
                    deterministic: bool = True, video_path: Path | None = None,
                    side_by_side: bool | None = None) -> EvalResult:
    """Run ``episodes`` episodes (env seeds ``seed``, ``seed + 1``, ...) with the algorithm's
    actor: its deterministic action (the policy's mode) unless ``deterministic`` is False.
    With ``video_path``, every frame is rendered (gymnasium's ``rgb_array``) into that mp4.

    Without a video, an actor with :meth:`~rlplug.contracts.Actor.act_batch` plays all the
    episodes side by side, one env each, one batched call per step (several times less CPU than
    one episode after another: evaluation during training shares the cores with the workers);
    the episodes and, for a deterministic actor, the returns are the same either way.
    ``side_by_side`` forces the choice (False: one after another)."""
    actor = algo.actor(deterministic)
    if side_by_side is None:
        side_by_side = video_path is None and supports_act_batch(actor)
    if side_by_side:
        if video_path is not None:
            raise ValueError("a video records one episode after another: side_by_side=False")
        result = EvalResult([], [])
        for first in range(0, episodes, SIDE_BY_SIDE_MAX):  # bounded: one env per episode
            part = _side_by_side(actor, env_cfg, min(SIDE_BY_SIDE_MAX, episodes - first),
                                 seed + first)
            result.returns += part.returns
            result.lengths += part.lengths
        return result
    if video_path is not None:
        # rgb_array rendering draws off-screen: no window, so no display is needed (headless runs).
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    try:
        env = make_env(env_cfg, render_mode="rgb_array" if video_path else None)
    except Exception as exc:
        if video_path is not None and "pygame" in str(exc):
            raise UserError("rendering this env needs pygame: pip install 'rlplug[video]'") from exc
        raise
    returns, lengths = [], []
    writer = None
    try:
        if video_path is not None:
            writer = _VideoWriter(Path(video_path), int(env.metadata.get("render_fps") or 30))
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            actor.reset()  # a recurrent policy starts every episode from its initial state
            total, length, done = 0.0, 0, False
            while not done:
                if writer is not None:
                    writer.add(_render(env))
                obs, reward, terminated, truncated, _ = env.step(actor.act(obs))
                total += float(reward)
                length += 1
                done = terminated or truncated
            if writer is not None:
                writer.add(_render(env))  # the final state, so the video shows how it ended
            returns.append(total)
            lengths.append(length)
    finally:
        env.close()
        if writer is not None:
            writer.close()
    return EvalResult(returns, lengths, writer.path if writer is not None else None)


def _side_by_side(actor: Actor, env_cfg: EnvConfig, episodes: int, seed: int) -> EvalResult:
    """The episodes of :func:`evaluate_policy` played together: episode ``i`` in its own env
    (reset with ``seed + i``), every env still running stepped once per ``act_batch`` call. An env
    whose episode ended keeps its last observation in the batch (its action is not used), so the
    batch keeps its size, as ``act_batch`` expects."""
    envs: list[gym.Env] = []
    try:
        for _ in range(episodes):
            envs.append(make_env(env_cfg))
        obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
        returns, lengths = [0.0] * episodes, [0] * episodes
        running = list(range(episodes))
        starts = np.ones(episodes, dtype=bool)
        while running:
            actions = actor.act_batch(np.stack(obs), starts)
            starts = np.zeros(episodes, dtype=bool)
            still = []
            for i in running:
                obs[i], reward, terminated, truncated, _ = envs[i].step(actions[i])
                returns[i] += float(reward)
                lengths[i] += 1
                if not (terminated or truncated):
                    still.append(i)
            running = still
    finally:
        for env in envs:
            env.close()
    return EvalResult(returns, lengths)


def _render(env: Any) -> np.ndarray:
    try:
        return env.render()
    except Exception as exc:
        if "pygame" in str(exc).lower():
            raise UserError("rendering this env needs pygame: pip install 'rlplug[video]'") from exc
        raise
