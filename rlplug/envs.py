"""Building gymnasium environments from ``EnvConfig``, with checks that fail before training.

``env.id`` is a gymnasium id (built in, or registered by an installed ``rlplug.envs`` plugin),
``module:EnvId`` (importing ``module`` registers ``EnvId``, gymnasium's convention) or
``module:EnvClass`` / ``module:make_env_function`` (made directly, nothing registered).
"""

from __future__ import annotations

import importlib
from types import ModuleType

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec as GymEnvSpec

from rlplug.config import EnvConfig
from rlplug.contracts import EnvSpec
from rlplug.errors import UserError
from rlplug.plugins import ENVS, register_env_plugins
from rlplug.registry import suggest


def _env_class_names(module: ModuleType) -> list[str]:
    return sorted(name for name, obj in vars(module).items()
                  if isinstance(obj, type) and issubclass(obj, gym.Env) and obj.__module__ == module.__name__)


def _resolve_id(env_id: str) -> str | GymEnvSpec:
    """What to pass to ``gymnasium.make`` for ``env.id``: a registered id (gymnasium's own, an
    ``rlplug.envs`` plugin's, or one registered by importing ``module`` in ``module:EnvId``), or
    a gymnasium ``EnvSpec`` for ``module:Class`` / ``module:factory``."""
    register_env_plugins()  # idempotent; here so that spawned workers register the plugins too
    if env_id in ENVS:
        ENVS.get(env_id)  # a plugin that fails to import: one line naming its distribution
        return env_id
    if ":" in env_id:
        module_name, _, attr = env_id.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # any error in the user's module: one line, not a traceback
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
            raise UserError(f"cannot import module '{module_name}' named in env.id ({reason}); "
                            f"fix the module, put it on PYTHONPATH or install it") from exc
        if attr in gym.registry:  # gymnasium's "module:EnvId": importing the module registered it
            return env_id
        creator = getattr(module, attr, None)
        if creator is None:
            classes = _env_class_names(module)
            raise UserError(f"module '{module_name}' has no env class or function '{attr}' and "
                            f"registers no gymnasium id '{attr}'; its env classes: "
                            f"{', '.join(classes) or 'none'}.{suggest(attr, classes)}")
        if (isinstance(creator, type) and not issubclass(creator, gym.Env)) or not callable(creator):
            raise UserError(f"env.id={env_id} names {creator!r}, which is neither a gymnasium.Env "
                            f"subclass nor a function returning an env")
        # made directly from the class (no registration), so a worker resolves it the same way
        return GymEnvSpec(id=env_id, entry_point=env_id)
    if env_id in gym.registry:
        return env_id
    known = sorted(gym.registry)
    raise UserError(f"unknown gymnasium env id '{env_id}'.{suggest(env_id, known)} "
                    f"Set env.id to a registered id (e.g. env.id=CartPole-v1), an env plugin's id "
                    f"(python -m rlplug --list) or module:EnvClass")


class _SelectObservation(gym.ObservationWrapper):
    """Keep only some components of a flat Box observation (partial observability)."""

    def __init__(self, env: gym.Env, indices: list[int]):
        super().__init__(env)
        self._indices = np.asarray(indices, dtype=np.intp)
        space = env.observation_space
        self.observation_space = gym.spaces.Box(space.low[self._indices], space.high[self._indices],
                                                dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[self._indices]


class _RescaleObservation(gym.ObservationWrapper):
    """Map Box components with finite bounds to [-1, 1]; unbounded components pass through."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.observation_space
        finite = np.isfinite(space.low) & np.isfinite(space.high) & (space.high > space.low)
        self._center = np.where(finite, (space.high + space.low) / 2, 0.0).astype(np.float32)
        self._half = np.where(finite, (space.high - space.low) / 2, 1.0).astype(np.float32)
        low = np.where(finite, -1.0, space.low).astype(np.float32)
        high = np.where(finite, 1.0, space.high).astype(np.float32)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return (observation - self._center) / self._half


class _Float32Observation(gym.ObservationWrapper):
    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.observation_space
        self.observation_space = gym.spaces.Box(space.low.astype(np.float32),
                                                space.high.astype(np.float32), dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.asarray(observation, dtype=np.float32)


def _check_spaces(cfg: EnvConfig, env: gym.Env) -> None:
    obs, act = env.observation_space, env.action_space
    if not isinstance(obs, gym.spaces.Box):
        raise UserError(f"env {cfg.id} has {type(obs).__name__} observations; rlplug supports Box "
                        f"observations only: flatten them with a wrapper or choose another env.id")
    if not isinstance(act, gym.spaces.Discrete | gym.spaces.Box):
        raise UserError(f"env {cfg.id} has {type(act).__name__} actions; rlplug supports Discrete "
                        f"and Box actions: choose another env.id")
    if isinstance(act, gym.spaces.Box) and not (np.all(np.isfinite(act.low)) and np.all(np.isfinite(act.high))):
        raise UserError(f"env {cfg.id} has unbounded Box actions; rlplug needs finite action bounds")
    if cfg.obs_indices is not None:
        if len(obs.shape) != 1:
            raise UserError(f"env.obs_indices needs a flat observation, but {cfg.id} observations "
                            f"have shape {obs.shape}; remove env.obs_indices")
        bad = [i for i in cfg.obs_indices if not 0 <= i < obs.shape[0]]
        if bad or not cfg.obs_indices:
            raise UserError(f"env.obs_indices={list(cfg.obs_indices)} is out of range for {cfg.id} "
                            f"(observations have {obs.shape[0]} components: use indices 0..{obs.shape[0] - 1})")


def make_env(cfg: EnvConfig, render_mode: str | None = None) -> gym.Env:
    """The env named by ``cfg`` with rlplug's wrappers; raises :class:`UserError` on bad input."""
    target = _resolve_id(cfg.id)
    kwargs = dict(cfg.kwargs)
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    if cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    try:
        env = gym.make(target, **kwargs)
    except (TypeError, ValueError, gym.error.Error) as exc:
        raise UserError(f"cannot make env {cfg.id} with env.kwargs={kwargs}: "
                        f"{str(exc).splitlines()[0]}; fix env.kwargs") from exc
    try:
        _check_spaces(cfg, env)
    except UserError:
        env.close()
        raise
    if cfg.obs_indices is not None:
        env = _SelectObservation(env, list(cfg.obs_indices))
    if cfg.normalize_obs:
        env = _RescaleObservation(env)
    if env.observation_space.dtype != np.float32:
        env = _Float32Observation(env)
    return env


def probe_env(cfg: EnvConfig) -> EnvSpec:
    """Make the env once to read (and check) its spaces, then close it."""
    env = make_env(cfg)
    try:
        return EnvSpec(cfg.id, env.observation_space, env.action_space)
    finally:
        env.close()
