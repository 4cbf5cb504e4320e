"""One training run: validate, build the plugins, execute, and always leave the outputs behind.

    config --> validate --> registries --> algorithm + executor --> workers --> monitor --> files
"""

from __future__ import annotations

import logging
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from rlplug import messages
from rlplug.checkpoint import CHECKPOINT_NAME, check_compatible, load_checkpoint, save_checkpoint
from rlplug.config import RunConfig, to_run_config
from rlplug.contracts import Algorithm, Network
from rlplug.counters import SharedCounters
from rlplug.envs import EnvSpec, probe_env
from rlplug.errors import UserError, WorkerFailure
from rlplug.loggers.wandb_logger import WandbLogger
from rlplug.monitor import Monitor, ReturnStats
from rlplug.outputs import CURVE_NAME, METRICS_NAME, SUMMARY_NAME, plot_learning_curve, read_metrics, write_summary
from rlplug.plugins import ALGOS, EXECUTORS, NETWORKS

log = logging.getLogger(__name__)

EXIT_CODES = {"completed": 0, "failed": 1, "interrupted": 130}


@dataclass
class RunResult:
    status: str  # completed | interrupted | failed
    exit_code: int
    summary: dict[str, Any]
    run_dir: Path
    error: str | None = None


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; ``signum`` decides the exit code (130 or 143)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into :class:`Interrupted` in the main thread while training."""
    def handler(signum: int, _frame: Any) -> None:
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def worker_seeds(seed: int, workers: int, env_steps: int = 0) -> list[int]:
    """A distinct, reproducible seed per worker (env and torch); resumed runs get fresh ones."""
    sequence = np.random.SeedSequence([seed, env_steps])
    return [int(s.generate_state(1)[0]) for s in sequence.spawn(workers)]


class NetworkBuilder:
    """Builds the selected network for the env's spaces: ``builder(policy_dim) -> Network``.

    A plain picklable object (not a closure), because it must reach process workers.
    """

    def __init__(self, cls: type[Network], obs_shape: tuple[int, ...], cfg: Any):
        self.cls, self.obs_shape, self.cfg = cls, obs_shape, cfg

    def __call__(self, policy_dim: int) -> Network:
        net = self.cls(self.obs_shape, policy_dim, self.cfg)
        if not isinstance(net, Network):
            raise TypeError(f"network {self.cls.__name__} built {type(net).__name__}, not a Network")
        return net


def build_algorithm(run: RunConfig, spec: EnvSpec) -> Algorithm:
    algo_cls = ALGOS.get(run.algo.name)
    builder = NetworkBuilder(NETWORKS.get(run.network.name), spec.obs_shape, run.network)
    return algo_cls(run.algo, run.env, spec, builder, run.seed)


def config_dict(run: RunConfig) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(run), resolve=True)  # type: ignore[return-value]


def train(cfg: DictConfig | RunConfig, run_dir: Path, *, wandb_group: str | None = None,
          wandb_name: str | None = None) -> RunResult:
    """Train as ``cfg`` says, writing everything into ``run_dir``.

    Raises :class:`UserError` for bad input before any worker starts. Afterwards nothing is lost:
    whatever happens, the checkpoint, metrics.jsonl, summary.json and the learning curve are written.
    """
    run = cfg if isinstance(cfg, RunConfig) else to_run_config(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = probe_env(run.env)
    executor = EXECUTORS.get(run.executor.name)(run.executor)
    algo = build_algorithm(run, spec)
    resolved = config_dict(run)

    resumed = _resume(run, algo, run_dir) if run.resume else None
    start_steps, start_episodes = (resumed["env_steps"], resumed["episodes"]) if resumed else (0, 0)
    counters = SharedCounters(start_steps, start_episodes)
    returns = ReturnStats()
    for row in read_metrics(run_dir / METRICS_NAME):
        if row.get("kind") == messages.EPISODE:
            returns.add(row["return"])

    logger = WandbLogger(run.logger, resolved, run_dir, wandb_group, wandb_name,
                         resume_id=resumed.get("wandb_run_id") if resumed else None)
    monitor = Monitor(run_dir, counters, run.total_steps, [logger], run.progress,
                      wall_offset=resumed["wall_s"] if resumed else 0.0, returns=returns)
    checkpoint_path = run_dir / CHECKPOINT_NAME

    def checkpoint() -> None:
        save_checkpoint(checkpoint_path, {
            "algorithm": algo.state_dict(), "config": resolved, "env_steps": counters.env_steps,
            "episodes": counters.episodes, "wall_s": monitor.wall_s,
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()},
            "wandb_run_id": logger.run_id})

    next_checkpoint = [_next_multiple(counters.env_steps, run.checkpoint.every_steps)]

    def periodic() -> None:
        logger.log_progress(counters.env_steps, monitor.steps_per_s)
        if next_checkpoint[0] and counters.env_steps >= next_checkpoint[0]:
            checkpoint()
            next_checkpoint[0] = _next_multiple(counters.env_steps, run.checkpoint.every_steps)

    monitor.tick_hooks.append(periodic)
    status, error, signum = "completed", None, None
    session_start = time.monotonic()
    try:
        with _signals_interrupt():
            executor.run(algo.run_worker, seeds=worker_seeds(run.seed, executor.workers, start_steps),
                         counters=counters, total_steps=run.total_steps,
                         on_message=monitor.on_message, on_tick=monitor.on_tick,
                         report_every_s=run.logger.train_log_every_s)
    except Interrupted as exc:
        status, signum = "interrupted", exc.signum
    except KeyboardInterrupt:
        status, signum = "interrupted", signal.SIGINT
    except WorkerFailure as exc:
        status, error = "failed", str(exc)
    finally:
        session_s = time.monotonic() - session_start
        monitor.close()
        if status != "failed" or "NonFiniteError" not in (error or ""):
            checkpoint()  # a non-finite model is not saved: the last good checkpoint stays
        summary = {
            "status": status, "env_steps": counters.env_steps, "episodes": counters.episodes,
            "wall_s": round(monitor.wall_s, 3),
            "steps_per_s": round((counters.env_steps - start_steps) / max(session_s, 1e-9), 1),
            "return_mean100_final": returns.mean, "return_mean100_best": returns.best_or_mean,
            "seed": run.seed, "workers": executor.workers, "resumed_from": run.resume,
            "error": error, "config": resolved,
        }
        write_summary(run_dir / SUMMARY_NAME, summary)
        curve = plot_learning_curve(run_dir / METRICS_NAME, run_dir / CURVE_NAME,
                                    f"{run.env.id} {run.algo.name}/{run.network.name} seed {run.seed}")
        exit_code = 143 if signum == signal.SIGTERM else EXIT_CODES[status]
        video = _maybe_video(run, algo, run_dir) if status == "completed" else None
        logger.finish(summary, checkpoint_path if checkpoint_path.exists() else None, curve, video,
                      exit_code)
    return RunResult(status, exit_code, summary, run_dir, error)


def _next_multiple(steps: int, every: int) -> int:
    return 0 if every <= 0 else (steps // every + 1) * every


def check_resumable(run: RunConfig, algo: Algorithm) -> dict[str, Any]:
    """Load ``run.resume``'s checkpoint into ``algo``; one-line errors if missing, corrupt,
    incompatible with this config, or already past ``total_steps``."""
    source = Path(run.resume).expanduser()
    payload = load_checkpoint(source)
    check_compatible(payload["config"], config_dict(run), source)
    if payload["env_steps"] >= run.total_steps:
        raise UserError(f"the run in {source} already reached {payload['env_steps']} env steps; "
                        f"raise total_steps above it to continue training")
    try:
        algo.load_state_dict(payload["algorithm"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise UserError(f"checkpoint in {source} does not fit this model ({str(exc).splitlines()[0]}); "
                        f"use the same network settings") from exc
    return payload


def _resume(run: RunConfig, algo: Algorithm, run_dir: Path) -> dict[str, Any]:
    """Continue a run: model and optimizer, RNG state, and its metrics (copied into ``run_dir``)."""
    payload = check_resumable(run, algo)
    torch.set_rng_state(payload["rng"]["torch"])
    np.random.set_state(payload["rng"]["numpy"])
    source = Path(run.resume).expanduser()
    source_dir = source if source.is_dir() else source.parent
    if source_dir.resolve() != run_dir.resolve() and (source_dir / METRICS_NAME).exists():
        shutil.copyfile(source_dir / METRICS_NAME, run_dir / METRICS_NAME)
    return payload


def _maybe_video(run: RunConfig, algo: Algorithm, run_dir: Path) -> Path | None:
    if not run.logger.video or run.logger.mode == "disabled":
        return None
    from rlplug.evaluate import evaluate_policy

    try:
        result = evaluate_policy(algo, run.env, episodes=run.logger.video_episodes,
                                 video_path=run_dir / "eval.mp4", seed=run.seed)
    except UserError as exc:
        log.warning("no evaluation video: %s", exc)
        return None
    return result.video

