"""Weights & Biases logging from the main process (workers never talk to W&B).

``import wandb`` happens only when a run uses W&B. Offline mode needs no account and no network;
if online initialisation fails, the run warns once and continues offline.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from rlplug import messages
from rlplug.config import LoggerConfig

log = logging.getLogger(__name__)

_TRAIN_KEYS = ("policy_loss", "value_loss", "entropy", "grad_norm", "lr")


def _row_to_wandb(row: dict[str, Any]) -> dict[str, Any] | None:
    kind = row.get("kind")
    if kind == messages.EPISODE:
        return {"env_step": row["env_step"], "episode/return": row["return"],
                "episode/length": row["length"], "episode/index": row.get("episode")}
    if kind == messages.TRAIN:
        data = {f"train/{k}": row[k] for k in _TRAIN_KEYS if k in row}
        data["env_step"] = row["env_step"]
        data[f"perf/steps_per_s_worker{row['worker']}"] = row.get("steps_per_s")
        return data
    if kind == "worker_restart":
        return {"env_step": row["env_step"], "events/worker_restarts": row["restart"]}
    return None


class WandbLogger:
    """One W&B run per rlplug run. ``run`` is None when W&B is disabled."""

    def __init__(self, cfg: LoggerConfig, config: dict[str, Any], run_dir: Path,
                 group: str | None, name: str | None, resume_id: str | None = None):
        self.run: Any = None
        self.mode = cfg.mode
        if cfg.mode == "disabled":
            return
        import wandb

        self._wandb = wandb
        kwargs = dict(project=cfg.project, entity=cfg.entity, group=cfg.group or group,
                      job_type=cfg.job_type, name=cfg.name or name, tags=list(cfg.tags),
                      config=config, dir=str(run_dir), id=resume_id,
                      resume="allow" if resume_id else None)
        settings = wandb.Settings(console="off", silent=True, init_timeout=float(
            os.environ.get("RLPLUG_WANDB_INIT_TIMEOUT", "30")))
        try:
            self.run = wandb.init(mode=cfg.mode, settings=settings, **kwargs)
        except Exception as exc:  # no network, no API key, server down...
            if cfg.mode != "online":
                raise
            log.warning("W&B online init failed (%s); logging offline instead: sync later with "
                        "`wandb sync %s/wandb`", str(exc).splitlines()[0] if str(exc) else
                        type(exc).__name__, run_dir)
            self.mode = "offline"
            self.run = wandb.init(mode="offline", settings=settings, **kwargs)
        self.run.define_metric("env_step")
        for prefix in ("episode/*", "train/*", "perf/*", "events/*", "eval/*"):
            self.run.define_metric(prefix, step_metric="env_step")

    @property
    def run_id(self) -> str | None:
        return None if self.run is None else self.run.id

    def log_row(self, row: dict[str, Any]) -> None:
        if self.run is None:
            return
        data = _row_to_wandb(row)
        if data is not None:
            self.run.log(data)

    def log_progress(self, env_step: int, steps_per_s: float) -> None:
        if self.run is not None:
            self.run.log({"env_step": env_step, "perf/steps_per_s": steps_per_s})

    def finish(self, summary: dict[str, Any], checkpoint: Path | None, curve: Path | None,
               video: Path | None, exit_code: int) -> None:
        if self.run is None:
            return
        wandb = self._wandb
        for key in ("return_mean100_final", "return_mean100_best", "env_steps", "episodes",
                    "wall_s", "steps_per_s", "status"):
            self.run.summary[key] = summary.get(key)
        if curve is not None and curve.exists():
            self.run.log({"learning_curve": wandb.Image(str(curve)), "env_step": summary["env_steps"]})
        if video is not None and video.exists():
            self.run.log({"eval/video": wandb.Video(str(video), format="mp4"),
                          "env_step": summary["env_steps"]})
        if checkpoint is not None and checkpoint.exists():
            artifact = wandb.Artifact(f"model-{self.run.id}", type="model",
                                      metadata={"env_steps": summary["env_steps"],
                                                "status": summary["status"]})
            artifact.add_file(str(checkpoint))
            self.run.log_artifact(artifact)
        self.run.finish(exit_code=exit_code)
        self.run = None
