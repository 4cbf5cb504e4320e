"""One training run: validate, build the plugins, execute, and always leave the outputs behind.

    config --> validate --> registries --> algorithm + executor --> workers --> monitor --> files
"""

from __future__ import annotations

import json
import logging
import signal
import threading
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
from rlplug.checkpoint import (
    CHECKPOINT_NAME,
    all_finite,
    check_compatible,
    load_checkpoint,
    save_checkpoint,
)
from rlplug.config import RunConfig, to_run_config
from rlplug.contracts import Algorithm, Network
from rlplug.counters import SharedCounters
from rlplug.envs import EnvSpec, probe_env
from rlplug.errors import UserError, WorkerFailure
from rlplug.loggers.wandb_logger import WandbLogger
from rlplug.monitor import Monitor, ReturnStats
from rlplug.outputs import (
    CURVE_NAME,
    METRICS_NAME,
    SUMMARY_NAME,
    plot_learning_curve,
    read_metrics,
    write_summary,
)
from rlplug.plugins import ALGOS, EXECUTORS, NETWORKS, distributions_with_plugins

log = logging.getLogger(__name__)

EXIT_CODES = {"completed": 0, "failed": 1, "interrupted": 130}


@dataclass
class RunResult:
    status: str  # completed | interrupted | failed
    exit_code: int
    summary: dict[str, Any]
    run_dir: Path
    error: str | None = None


@contextmanager
def _signals_interrupt(received: list[int]) -> Iterator[None]:
    """While training, SIGINT and SIGTERM are only recorded in ``received``; the first one decides
    the status (interrupted) and the exit code (130 or 143).

    The handler does not raise: an exception at an arbitrary point of the executor's loop could
    leave a worker message half-read, or cut the final checkpoint short. Instead the run asks the
    executor to stop at its next tick, and repeated signals cannot interrupt the final writes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may install handlers (e.g. train() called from a thread)
        return

    def handler(signum: int, _frame: Any) -> None:
        received.append(signum)

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
        state = algo.state_dict()
        if not all_finite(state):
            log.error("no checkpoint at env step %d: the model holds non-finite values; the last "
                      "good checkpoint stays", counters.env_steps)
            return
        save_checkpoint(checkpoint_path, {
            "algorithm": state, "config": resolved, "env_steps": counters.env_steps,
            "episodes": counters.episodes, "wall_s": monitor.wall_s,
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()},
            "wandb_run_id": logger.run_id})

    next_checkpoint = [_next_multiple(counters.env_steps, run.checkpoint.every_steps)]

    def periodic() -> None:
        logger.log_progress(counters.env_steps)
        if next_checkpoint[0] and counters.env_steps >= next_checkpoint[0]:
            checkpoint()
            next_checkpoint[0] = _next_multiple(counters.env_steps, run.checkpoint.every_steps)

    received: list[int] = []  # SIGINT/SIGTERM numbers, recorded by _signals_interrupt
    stopping: list[bool] = []

    def stop_on_signal() -> None:
        if received and not stopping:
            stopping.append(True)
            log.warning("%s received: stopping the workers, then saving the outputs",
                        signal.Signals(received[0]).name)
            executor.request_stop()

    monitor.tick_hooks.insert(0, stop_on_signal)
    monitor.tick_hooks.append(periodic)
    status, error, signum, fatal = "completed", None, None, False
    session_start = time.monotonic()
    with _signals_interrupt(received):
        try:
            executor.run(algo.run_worker,
                         seeds=worker_seeds(run.seed, executor.workers, start_steps),
                         counters=counters, total_steps=run.total_steps,
                         on_message=monitor.on_message, on_tick=monitor.on_tick,
                         report_every_s=run.logger.train_log_every_s)
        except KeyboardInterrupt:  # SIGINT where no handler could be installed
            status, signum = "interrupted", signal.SIGINT
        except WorkerFailure as exc:
            status, error, fatal = "failed", str(exc), exc.fatal
        except Exception as exc:  # e.g. a full disk in the main process: record it, then raise
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if received and status == "completed":
                status, signum = "interrupted", received[0]
            session_s = time.monotonic() - session_start
            next_checkpoint[0] = 0  # no periodic checkpoint in close(): the final one decides
            monitor.close()
            if not fatal:
                checkpoint()  # after a fatal worker error (e.g. a non-finite loss) the last good one stays
            summary = {
                "status": status, "env_steps": counters.env_steps, "episodes": counters.episodes,
                "wall_s": round(monitor.wall_s, 3),
                "steps_per_s": round((counters.env_steps - start_steps) / max(session_s, 1e-9), 1),
                "return_mean100_final": returns.mean, "return_mean100_best": returns.best_or_mean,
                "seed": run.seed, "workers": executor.workers, "resumed_from": run.resume,
                "error": error, "plugins": distributions_with_plugins(), "config": resolved,
            }
            write_summary(run_dir / SUMMARY_NAME, summary)
            curve = plot_learning_curve(
                run_dir / METRICS_NAME, run_dir / CURVE_NAME,
                f"{run.env.id} {run.algo.name}/{run.network.name} seed {run.seed}")
            exit_code = 143 if signum == signal.SIGTERM else EXIT_CODES[status]
            video = _maybe_video(run, algo, run_dir) if status == "completed" else None
            logger.finish(summary, checkpoint_path if checkpoint_path.exists() else None, curve,
                          video, exit_code)
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
    # Rows written after the checkpoint (a run killed between two checkpoints) are dropped: the
    # resumed run records those env steps again.
    rows = [r for r in read_metrics(source_dir / METRICS_NAME)
            if r.get("env_step", 0) <= payload["env_steps"]]
    tmp = run_dir / f".{METRICS_NAME}.tmp"
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(run_dir / METRICS_NAME)
    return payload


def _maybe_video(run: RunConfig, algo: Algorithm, run_dir: Path) -> Path | None:
    """``logger.video``: eval.mp4 of the final policy (written even when W&B is disabled)."""
    if not run.logger.video:
        return None
    from rlplug.evaluate import evaluate_policy

    try:
        result = evaluate_policy(algo, run.env, episodes=run.logger.video_episodes,
                                 video_path=run_dir / "eval.mp4", seed=run.seed)
    except UserError as exc:
        log.warning("no evaluation video: %s", exc)
        return None
    return result.video

