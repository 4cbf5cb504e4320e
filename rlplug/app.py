"""The Hydra application: composes the config, then trains in Hydra's run directory."""

from __future__ import annotations

import multiprocessing
import re
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import DictConfig

from rlplug.errors import report_user_errors
from rlplug.interrupts import in_sweep_worker, running_job, sweep_stopped
from rlplug.plugins import install_search_path
from rlplug.resume import job_config
from rlplug.run import train
from rlplug.rundir import register_resolvers, write_interrupted_summary

# Registration only: schemas into the ConfigStore, plugin config packages onto the search path,
# the ${rlplug_uid:} resolver of the default run directory names. It must happen at import,
# because Hydra's joblib launcher re-imports this module in its workers.
install_search_path()
register_resolvers()


class JobFailed(CompactHydraException):
    """A job of a parallel sweep failed. Raised instead of ``sys.exit``: joblib would answer a
    ``SystemExit`` from one job by killing all the others; Hydra reports this one in one line
    once every job has ended, and exits 1."""


def sweep_group(sweep_dir: str | Path) -> str:
    """The W&B group of a sweep: its directory's name. With the default layout
    ``multirun/<date>/<time>_<uid>`` that name is only a time of day, so the date is kept too."""
    path = Path(sweep_dir)
    if re.fullmatch(r"\d{2}-\d{2}-\d{2}(_[0-9a-f]+)?", path.name) and path.parent.name:
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
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if sweep_stopped():  # a queued job of a sweep that Ctrl-C/SIGTERM stopped: do not start it
        write_interrupted_summary(run_dir, "the sweep was stopped before this job started")
        print(f"rlplug: sweep stopped; job not started: {run_dir}", file=sys.stderr)
        return None
    group, name = _wandb_names()
    try:
        with running_job(), report_user_errors("rlplug"):
            run = job_config(cfg, HydraConfig.get().overrides.task)  # resume=: saved config
            result = train(run, run_dir, wandb_group=group, wandb_name=name)
    except SystemExit as exc:  # a one-line user error, already printed
        if in_sweep_worker():
            raise JobFailed(f"rlplug: job {run_dir.name} refused its input (exit {exc.code})") \
                from None
        raise
    except KeyboardInterrupt:
        if not in_sweep_worker():
            raise  # python -m rlplug turns it into one line and exit 130
        write_interrupted_summary(run_dir, "interrupted while starting, before any env step")
        return None
    if result.status == "failed":
        print(f"rlplug: run failed: {result.error}", file=sys.stderr)
    elif result.status == "interrupted" and result.summary.get("note"):
        print(f"rlplug: {result.summary['note']}; summary in {result.run_dir}", file=sys.stderr)
    elif result.status == "interrupted":
        print(f"rlplug: interrupted at {result.summary['env_steps']} env steps; outputs saved in "
              f"{result.run_dir}", file=sys.stderr)
    elif result.exit_code:  # completed, but an output could not be written
        errors = result.summary.get("output_errors") or ["an output could not be written"]
        print(f"rlplug: error: {errors[0]}" + (f" (and {len(errors) - 1} more, see "
              f"summary.json)" if len(errors) > 1 else ""), file=sys.stderr)
    if result.exit_code:
        if in_sweep_worker():
            # the sweep's parent decides its exit code; an exception here must stay an Exception
            if result.status == "interrupted":
                return result.summary.get("return_mean100_final")
            lines = (result.error or "see its summary.json").strip().splitlines()
            reason = lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1].strip()}"
            raise JobFailed(f"rlplug: job {run_dir.name} {result.status}: {reason}")
        sys.exit(result.exit_code)
    return result.summary.get("return_mean100_final")
