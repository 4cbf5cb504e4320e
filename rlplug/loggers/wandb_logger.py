"""Weights & Biases logging from the main process (workers never talk to W&B).

``import wandb`` happens only when a run uses W&B (``logger.mode`` offline or online), so importing
rlplug, or a run with ``logger.mode=disabled``, never loads it. Offline mode needs no account and no
network: the run is written to ``<run dir>/wandb/`` and can be uploaded later with ``wandb sync``.
If online initialisation fails (no API key, no network, server down), the run warns once and
continues offline; rlplug's own files (metrics.jsonl, summary.json, ...) are written either way.

The W&B run starts at the logger's first use (:meth:`WandbLogger.start`, called by the run's first
tick), not when the logger is built: by then the workers have been launched -- forked, since W&B's
threads did not exist yet -- so they act while wandb is imported and ``wandb.init`` runs (about a
second) instead of waiting for it.
Whether wandb is installed is checked when the logger is built, before any worker starts.

Every W&B chart uses ``env_step`` (env steps summed over all workers) as its x-axis.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import numbers
import os
import time
from pathlib import Path
from typing import Any

from rlplug import messages
from rlplug.config import LoggerConfig
from rlplug.errors import UserError
from rlplug.periodic_eval import BEST_CHECKPOINT_NAME, EVAL

log = logging.getLogger(__name__)

# Keys of a train message that identify it rather than measure training; ``steps_per_s`` (one
# worker's own rate) is charted as ``perf/worker<N>_steps_per_s`` instead.
_TRAIN_ROW_KEYS = ("kind", "worker", "env_step", "wall_s", "steps_per_s")
SUMMARY_KEYS = ("return_mean100_final", "return_mean100_best", "eval_return_final",
                "eval_return_best", "env_steps", "episodes", "wall_s",
                "steps_per_s", "status", "success_rate_100")
STEP_METRIC = "env_step"
# Key prefixes plotted against env_step; "learning_curve" is the final plot as an image.
_PREFIXES = ("episode/*", "train/*", "perf/*", "events/*", "eval/*", "learning_curve")

# Set once online initialisation failed in this process: later runs of a sequential sweep go
# straight to offline instead of waiting for the same timeout again.
_online_failed: str | None = None


def init_timeout_s() -> float:
    """Seconds wandb.init may take online (env ``RLPLUG_WANDB_INIT_TIMEOUT``, default 30)."""
    value = os.environ.get("RLPLUG_WANDB_INIT_TIMEOUT", "30")
    try:
        return float(value)
    except ValueError:
        raise UserError(f"RLPLUG_WANDB_INIT_TIMEOUT must be a number of seconds, got {value!r}; "
                        f"set e.g. RLPLUG_WANDB_INIT_TIMEOUT=30") from None


class _Throughput:
    """Env steps per second of the whole run (all workers) over windows of ``every_s`` seconds,
    measured in the main process from the shared step counter."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self.last: tuple[float, int] | None = None
        self.samples = 0

    def sample(self, env_step: int) -> float | None:
        """The rate since the previous sample, once at least ``every_s`` seconds have passed."""
        now = time.monotonic()
        if self.last is None:
            self.last = (now, env_step)
            return None
        start, start_steps = self.last
        if now - start < self.every_s:
            return None
        self.last = (now, env_step)
        self.samples += 1
        return (env_step - start_steps) / (now - start)


class _EpisodeWindow:
    """Episodes for W&B, one history row per window of at most ``every_s`` seconds.

    A ``wandb.log`` call costs about 0.2 ms of the main process's CPU; early in a CartPole run the
    workers finish thousands of episodes a second, so a row per episode would take a large share
    of a core from them (and, with many workers, could leave the main process behind the pipes).
    A window's row is ``episode/return`` and ``episode/length`` (their means over the window),
    ``episode/return_min``, ``episode/return_max``, ``episode/count`` (how many episodes it
    summarises), ``episode/index`` (the last one's) and ``episode/success`` (the rate, for envs
    that report it), at the env step of the last episode. With one episode in a window (or
    ``every_s`` 0) the row is that episode. metrics.jsonl keeps every episode.
    """

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self.rows: list[dict[str, Any]] = []
        self.started = 0.0  # when the first pending episode arrived

    def add(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """Take one episode row; returns a W&B row when the window is due."""
        if not self.rows:
            self.started = time.monotonic()
        self.rows.append(row)
        return self.due()

    def due(self) -> dict[str, Any] | None:
        """The window's W&B row if ``every_s`` has passed since its first episode, else None."""
        if self.rows and time.monotonic() - self.started >= self.every_s:
            return self.flush()
        return None

    def flush(self) -> dict[str, Any] | None:
        """The pending episodes' W&B row (None if there are none)."""
        rows, self.rows = self.rows, []
        return episodes_to_wandb(rows) if rows else None


def episodes_to_wandb(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The W&B history entry summarising one or more episode rows of metrics.jsonl (see
    :class:`_EpisodeWindow`)."""
    returns = [float(r["return"]) for r in rows]
    data = {STEP_METRIC: max(r["env_step"] for r in rows),
            "episode/return": sum(returns) / len(returns),
            "episode/return_min": min(returns), "episode/return_max": max(returns),
            "episode/length": sum(r["length"] for r in rows) / len(rows),
            "episode/count": len(rows), "episode/index": rows[-1].get("episode")}
    successes = [float(r["success"]) for r in rows if "success" in r]
    if successes:  # envs that report info["is_success"]
        data["episode/success"] = sum(successes) / len(successes)
    return data


def _is_number(value: Any) -> bool:
    """A real number W&B can chart (Python or numpy ints, floats and bools)."""
    return isinstance(value, numbers.Real)


def row_to_wandb(row: dict[str, Any]) -> dict[str, Any] | None:
    """The W&B history entry for one metrics.jsonl row (None for rows W&B does not chart)."""
    kind = row.get("kind")
    if kind == messages.EPISODE:  # (a run logs them in windows: WandbLogger.log_row)
        return episodes_to_wandb([row])
    if kind == messages.TRAIN:
        # Every numeric statistic the algorithm sent, whatever the algorithm; text is not charted.
        data: dict[str, Any] = {f"train/{k}": v for k, v in row.items()
                                if k not in _TRAIN_ROW_KEYS and _is_number(v)}
        data[STEP_METRIC] = row["env_step"]
        if "steps_per_s" in row:  # one worker's own rate; perf/steps_per_s is the whole run's
            data[f"perf/worker{row['worker']}_steps_per_s"] = row["steps_per_s"]
        return data
    if kind == messages.WORKER_RESTART:
        return {STEP_METRIC: row["env_step"], "events/worker_restarts": row["restart"]}
    if kind == EVAL:  # evaluation during training (rlplug.periodic_eval)
        data = {STEP_METRIC: row["env_step"], "eval/return_mean": row["return_mean"],
                "eval/return_std": row["return_std"]}
        if "length_mean" in row:
            data["eval/length_mean"] = row["length_mean"]
        return data
    return None


class WandbLogger:
    """One W&B run per rlplug run. ``run`` is None when W&B is disabled (or broke mid-run).

    In a multirun, ``group`` (the sweep's name) and ``name`` (the job's overrides) are the defaults
    for ``logger.group`` and ``logger.name``.
    """

    def __init__(self, cfg: LoggerConfig, config: dict[str, Any], run_dir: Path,
                 group: str | None, name: str | None, resume_id: str | None = None):
        self.run: Any = None
        self.mode = cfg.mode
        self.run_dir = Path(run_dir)
        self.sync_dir: Path | None = None
        self._throughput = _Throughput(cfg.train_log_every_s)
        self._episodes = _EpisodeWindow(cfg.episode_log_every_s)
        self._pending: dict[str, Any] | None = None  # wandb.init's arguments until start()
        if cfg.mode == "disabled":
            return
        if importlib.util.find_spec("wandb") is None:
            raise UserError(f"logger.mode={cfg.mode} needs wandb (an rlplug dependency): "
                            f"pip install wandb, or run without W&B: logger=none")
        self._init_timeout_s = init_timeout_s()  # a bad setting is an error before any worker
        self._pending = dict(
            project=cfg.project, entity=cfg.entity, group=cfg.group or group,
            job_type=cfg.job_type, name=cfg.name or name, tags=list(cfg.tags), config=config,
            dir=str(self.run_dir), id=resume_id, resume="allow" if resume_id else None)

    def start(self) -> None:
        """Start the W&B run if it has not started yet (see the module doc); every other method
        calls it first."""
        if self._pending is None:
            return
        kwargs, self._pending = self._pending, None
        # only a run that uses W&B pays for importing it (see the module doc)
        import wandb

        self._wandb = wandb
        # console="off": the run's stdout is Hydra's business; silent: no banner per run.
        settings = wandb.Settings(console="off", silent=True, init_timeout=self._init_timeout_s)
        try:
            if self.mode == "online":
                self.run = self._init_online(kwargs, settings)
            if self.run is None:
                self.mode = "offline"
                self.run = wandb.init(mode="offline", settings=settings, **kwargs)
            self.sync_dir = Path(self.run.settings.sync_dir)  # what `wandb sync` uploads
            self.run.define_metric(STEP_METRIC)
            for prefix in _PREFIXES:
                self.run.define_metric(prefix, step_metric=STEP_METRIC)
        except Exception as exc:  # e.g. a full disk: the workers already run, the run goes on
            log.warning("W&B could not start (%s); continuing without W&B (rlplug's own files "
                        "are complete)", exc)
            if self.run is not None:
                self._abandon()

    def _init_online(self, kwargs: dict[str, Any], settings: Any) -> Any:
        """An online run, or None (after one warning) if W&B cannot be reached or has no key."""
        global _online_failed
        if _online_failed is not None:
            log.info("W&B online init failed earlier in this process (%s); logging offline",
                     _online_failed)
            return None
        wandb = self._wandb
        try:
            # prompt=False: never block a training job on an interactive login prompt (older
            # wandb versions have no such option and prompt only on a terminal).
            has_prompt_option = "prompt" in inspect.signature(wandb.login).parameters
            if not has_prompt_option or wandb.login(prompt=False):
                return wandb.init(mode="online", settings=settings, **kwargs)
            reason = "no W&B API key; run `wandb login` or set WANDB_API_KEY"
        except Exception as exc:  # no network, server down, bad key...
            message = str(exc).strip().splitlines()
            reason = message[0] if message else type(exc).__name__
        _online_failed = reason
        log.warning("W&B online init failed (%s); logging offline instead (upload later with "
                    "`wandb sync`, see the end of the run)", reason)
        return None

    @property
    def run_id(self) -> str | None:
        self.start()
        return None if self.run is None else self.run.id

    def _log(self, data: dict[str, Any]) -> None:
        """Log one history row; if W&B itself breaks, warn once and stop using it (the run and
        its local files go on)."""
        try:
            self.run.log(data)
        except Exception as exc:
            log.warning("W&B logging failed (%s); continuing without W&B", exc)
            self._abandon()

    def _abandon(self) -> None:
        run, self.run = self.run, None
        try:
            run.finish(exit_code=1)
        except Exception:  # noqa: BLE001 - it is already broken; the local files are what count
            pass

    def log_row(self, row: dict[str, Any]) -> None:
        """Log one metrics row; train rows also carry the run's throughput ``perf/steps_per_s``
        (at most once per ``logger.train_log_every_s``)."""
        self.start()
        if self.run is None:
            return
        if row.get("kind") == messages.EPISODE:
            data = self._episodes.add(row)
            if data is not None:
                self._log(data)
            return
        data = row_to_wandb(row)
        if data is None:
            return
        if row.get("kind") == messages.TRAIN:
            rate = self._throughput.sample(row["env_step"])
            if rate is not None:
                data["perf/steps_per_s"] = rate
        self._log(data)

    def log_progress(self, env_step: int) -> None:
        """Called on every monitor tick: logs ``perf/steps_per_s`` when a window has passed, so the
        chart exists even while no train rows arrive."""
        self.start()
        if self.run is None:
            return
        episodes = self._episodes.due()
        if episodes is not None:
            self._log(episodes)
        if self.run is None:  # that log broke W&B
            return
        rate = self._throughput.sample(env_step)
        if rate is not None:
            self._log({STEP_METRIC: env_step, "perf/steps_per_s": rate})

    def finish(self, summary: dict[str, Any], checkpoint: Path | None, curve: Path | None,
               video: Path | None, exit_code: int) -> None:
        """Summary, learning-curve image, evaluation video and the checkpoint as a model artifact;
        then close the run."""
        self.start()
        if self.run is None:
            return
        wandb = self._wandb
        episodes = self._episodes.flush()  # the last window: nothing is lost
        if episodes is not None:
            self._log(episodes)
            if self.run is None:
                return
        try:
            final = {STEP_METRIC: summary["env_steps"]}
            if self._throughput.samples == 0 and summary.get("steps_per_s") is not None:
                final["perf/steps_per_s"] = summary["steps_per_s"]  # a run shorter than a window
            if curve is not None and curve.exists():
                final["learning_curve"] = wandb.Image(str(curve))
            if video is not None and video.exists():
                final["eval/video"] = wandb.Video(str(video), format="mp4")
            self.run.log(final)
            for key in SUMMARY_KEYS:
                self.run.summary[key] = summary.get(key)
            if checkpoint is not None and checkpoint.exists():
                artifact = wandb.Artifact(f"model-{self.run.id}", type="model", metadata={
                    "env_steps": summary["env_steps"], "status": summary["status"],
                    "return_mean100_final": summary.get("return_mean100_final"),
                    "eval_return_best": summary.get("eval_return_best")})
                artifact.add_file(str(checkpoint))
                best = checkpoint.with_name(BEST_CHECKPOINT_NAME)  # the kept policy, if evaluated
                if best.exists():
                    artifact.add_file(str(best))
                self.run.log_artifact(artifact)
            self.run.finish(exit_code=exit_code)
        except Exception as exc:
            log.warning("W&B could not finish the run (%s); the local files are complete", exc)
            self._abandon()
            return
        self.run = None
        if self.mode == "offline":
            log.info("W&B offline run saved; upload it with `wandb sync %s`", self.sync_dir)
