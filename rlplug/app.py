"""The Hydra application: composes the config, then trains in Hydra's run directory."""

from __future__ import annotations

import multiprocessing
import re
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from rlplug.errors import report_user_errors
from rlplug.plugins import install_search_path
from rlplug.resume import job_config
from rlplug.run import train

# Registration only: schemas into the ConfigStore, plugin config packages onto the search path.
# It must happen at import, because Hydra's joblib launcher re-imports this module in its workers.
install_search_path()


def sweep_group(sweep_dir: str | Path) -> str:
    """The W&B group of a sweep: its directory's name. With the default layout
    ``multirun/<date>/<time>`` that name is only a time of day, so the date is kept too."""
    path = Path(sweep_dir)
    if re.fullmatch(r"\d{2}-\d{2}-\d{2}", path.name) and path.parent.name:
        return f"{path.parent.name}_{path.name}"
    return path.name


def _wandb_names() -> tuple[str | None, str | None]:
    """In a multirun: group = the sweep's directory name, run name = the job's overrides."""
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None, None
    return sweep_group(hc.sweep.dir), hc.job.override_dirname or f"job{hc.job.num}"


def _reset_foreign_start_method() -> None:
    """Inside a joblib (loky) launcher worker the process-wide start method is "loky", and a
    worker process spawned from there inherits that name and dies unable to find it. Reset it to
    the platform default; executors choose their own context (e.g. spawn) explicitly anyway."""
    if multiprocessing.get_start_method(allow_none=True) not in (
            None, *multiprocessing.get_all_start_methods()):
        multiprocessing.set_start_method(None, force=True)


@hydra.main(version_base="1.3", config_path="pkg://rlplug.conf", config_name="config")
def hydra_main(cfg: DictConfig) -> Any:
    _reset_foreign_start_method()
    group, name = _wandb_names()
    with report_user_errors("rlplug"):
        run = job_config(cfg, HydraConfig.get().overrides.task)  # resume=: saved config
        result = train(run, Path(HydraConfig.get().runtime.output_dir), wandb_group=group,
                       wandb_name=name)
    if result.status == "failed":
        print(f"rlplug: run failed: {result.error}", file=sys.stderr)
    elif result.status == "interrupted":
        print(f"rlplug: interrupted at {result.summary['env_steps']} env steps; outputs saved in "
              f"{result.run_dir}", file=sys.stderr)
    if result.exit_code:
        sys.exit(result.exit_code)
    return result.summary.get("return_mean100_final")
