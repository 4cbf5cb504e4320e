"""The core's config schema (structured configs in Hydra's ConfigStore) and its validation.

Plugins register their own dataclasses for the ``algo``, ``network`` and ``executor`` groups the
same way (see ``docs/plugins.md``). Range checks live in each dataclass's ``__post_init__`` and call
:func:`require`, so a bad value fails with the key's name before any worker starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from rlplug.errors import UserError


def require(ok: bool, key: str, rule: str, value: Any, example: str) -> None:
    """Raise a one-line :class:`UserError` naming ``key`` unless ``ok``.

    ``rule`` says what is allowed ("must be > 0"), ``example`` a valid override ("algo.lr=3e-4").
    """
    if not ok:
        raise UserError(f"{key} {rule}, got {value!r}; set e.g. {example}")


def require_finite(value: float | None, key: str, example: str) -> None:
    """:func:`require` that a float option is a finite number (not inf or nan); None passes."""
    if value is not None:
        require(math.isfinite(value), key, "must be a finite number", value, example)


MAX_SEED = 2**32 - 1  # numpy, torch and gymnasium all take seeds up to here
# Weights & Biases' own limits (wandb.sdk.wandb_settings: validate_project, validate_run_tags)
WANDB_PROJECT_MAX = 128
WANDB_PROJECT_FORBIDDEN = "/\\#?%:"
WANDB_TAG_MAX = 64


@dataclass
class EnvConfig:
    """Which gymnasium env to make and how to wrap it."""

    id: str = MISSING  # any registered gymnasium id, e.g. CartPole-v1
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed to gymnasium.make
    obs_indices: list[int] | None = None  # keep only these observation components (Box obs)
    normalize_obs: bool = False  # rescale Box components with finite bounds to [-1, 1]
    max_episode_steps: int | None = None  # override the env's time limit

    def __post_init__(self) -> None:
        if self.max_episode_steps is not None:
            require(self.max_episode_steps >= 1, "env.max_episode_steps", "must be >= 1",
                    self.max_episode_steps, "env.max_episode_steps=500")


@dataclass
class LoggerConfig:
    """Weights & Biases settings; local files (metrics.jsonl, summary.json, ...) are always written."""

    mode: str = "offline"  # offline | online | disabled
    project: str = "rlplug"
    entity: str | None = None
    group: str | None = None  # default: the sweep's directory name in a multirun
    tags: list[str] = field(default_factory=list)
    name: str | None = None  # run name; default: the job's overrides in a multirun
    job_type: str = "train"
    video: bool = False  # log an evaluation video of the kept policy
    video_episodes: int = 1
    video_which: str = "best"  # best: checkpoint_best.pt (else the latest); latest: the final policy
    train_log_every_s: float = 2.0  # how often each worker sends averaged training stats
    # W&B: one episode row per window of this many seconds (the episodes that ended in it); 0: a
    # row per episode. metrics.jsonl always has every episode.
    episode_log_every_s: float = 0.1

    def __post_init__(self) -> None:
        require(self.mode in ("offline", "online", "disabled"), "logger.mode",
                "must be offline, online or disabled", self.mode, "logger.mode=offline")
        require(self.train_log_every_s > 0, "logger.train_log_every_s", "must be > 0",
                self.train_log_every_s, "logger.train_log_every_s=2")
        require_finite(self.train_log_every_s, "logger.train_log_every_s",
                       "logger.train_log_every_s=2")
        require_finite(self.episode_log_every_s, "logger.episode_log_every_s",
                       "logger.episode_log_every_s=0.1")
        require(self.episode_log_every_s >= 0, "logger.episode_log_every_s", "must be >= 0",
                self.episode_log_every_s, "logger.episode_log_every_s=0.1")
        bad = sorted({c for c in WANDB_PROJECT_FORBIDDEN if c in self.project})
        require(0 < len(self.project) <= WANDB_PROJECT_MAX and not bad, "logger.project",
                f"must be 1 to {WANDB_PROJECT_MAX} characters without any of "
                f"{' '.join(WANDB_PROJECT_FORBIDDEN)} (W&B's rule)", self.project,
                "logger.project=rlplug")
        for tag in self.tags:
            require(0 < len(str(tag)) <= WANDB_TAG_MAX, "logger.tags",
                    f"must each be 1 to {WANDB_TAG_MAX} characters (W&B's rule)", str(tag),
                    "logger.tags=[baseline]")
        require(self.video_episodes >= 1, "logger.video_episodes", "must be >= 1",
                self.video_episodes, "logger.video_episodes=1")
        require(self.video_which in ("best", "latest"), "logger.video_which",
                "must be best or latest", self.video_which, "logger.video_which=best")


@dataclass
class CheckpointConfig:
    every_steps: int = 100_000  # also saved at the end of every run; 0: only at the end

    def __post_init__(self) -> None:
        require(self.every_steps >= 0, "checkpoint.every_steps", "must be >= 0",
                self.every_steps, "checkpoint.every_steps=100000")


@dataclass
class EvalConfig:
    """Evaluation during training, in the main process (``rlplug.periodic_eval``): rows of kind
    ``eval`` in metrics.jsonl, and checkpoint_best.pt, the best evaluated policy."""

    every_steps: int = 50_000  # evaluate every this many env steps and at the end; 0: never
    episodes: int = 10  # whole episodes per evaluation
    deterministic: bool = True  # the policy's mode; false: sampled actions
    seed: int = 0  # episode i resets its env with seed + i: the same episodes every evaluation

    def __post_init__(self) -> None:
        require(self.every_steps >= 0, "eval.every_steps", "must be >= 0 (0: no evaluation)",
                self.every_steps, "eval.every_steps=50000")
        require(self.episodes >= 1, "eval.episodes", "must be >= 1", self.episodes,
                "eval.episodes=10")
        require(0 <= self.seed < 2**32, "eval.seed", "must be in [0, 2**32 - 1]", self.seed,
                "eval.seed=0")


@dataclass
class RunConfig:
    """The whole experiment. ``algo``, ``network`` and ``executor`` come from plugins."""

    seed: int = 0
    total_steps: int = 100_000  # env steps summed over all workers; the run stops there
    env: EnvConfig = field(default_factory=EnvConfig)
    algo: Any = MISSING
    network: Any = MISSING
    executor: Any = MISSING
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    resume: str | None = None  # a run directory to continue from its last checkpoint
    progress: bool = True  # live progress bar in the terminal

    def __post_init__(self) -> None:
        require(self.total_steps >= 1, "total_steps", "must be >= 1", self.total_steps,
                "total_steps=100000")
        require(0 <= self.seed <= MAX_SEED, "seed", f"must be in [0, {MAX_SEED}]", self.seed,
                "seed=0")


def register_core_schemas() -> None:
    """Put the core schema into Hydra's ConfigStore (idempotent). It types ``env``, ``logger``
    and the other core sections, so their YAML presets are checked against it; the plugin
    sections (``algo``, ``network``, ``executor``) are typed by the option a plugin registers."""
    ConfigStore.instance().store(name="rlplug_schema", node=RunConfig)


def to_run_config(cfg: DictConfig) -> RunConfig:
    """Validate a composed config: types were checked by Hydra, ranges are checked here.

    Plugin sections become their own dataclasses (their ``__post_init__`` checks run too).
    """
    for section in ("algo", "network", "executor"):
        node = cfg.get(section)
        if not isinstance(node, DictConfig) or "name" not in node:
            raise UserError(f"no {section} selected; choose one, e.g. `{section}=<name>` "
                            f"(see `python -m rlplug --list`)")
    _check_no_added_keys(cfg, "")
    run = OmegaConf.to_object(cfg)
    assert isinstance(run, RunConfig)
    return run


def _check_no_added_keys(node: DictConfig, prefix: str) -> None:
    """Refuse keys a schema does not have. ``+algo.lrr=1`` adds one past Hydra's struct check,
    and ``OmegaConf.to_object`` would silently drop it."""
    schema = OmegaConf.get_type(node)
    known = {f.name for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else None
    for key in node.keys():
        path = f"{prefix}{key}"
        if known is not None and key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.5)
            hint = f" Did you mean '{prefix}{close[0]}'?" if close else ""
            raise UserError(f"unknown key '{path}'.{hint} List the valid keys with "
                            f"`python -m rlplug --cfg job`")
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            _check_no_added_keys(child, f"{path}.")
