"""Review a sweep: ``python -m rlplug.report <multirun dir>``.

Reads every job's summary.json under the directory and groups the jobs into settings (a job's
overrides minus ``seed``). For each setting it reports the mean +/- std across seeds of the final
100-episode mean return (``return_mean100_final``) and of its best value, sorted best first.
Writes next to the jobs, into the multirun directory:

* ``report.md``: the table (also printed);
* ``report.json``: the same numbers, per setting, with every seed's value;
* ``report.png``: each setting's mean learning curve (the 100-episode moving average of the
  episode returns, interpolated onto a common env-step grid) with a +/- std band across seeds.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from rlplug.errors import UserError, report_user_errors
from rlplug.monitor import WINDOW
from rlplug.outputs import (
    METRICS_NAME,
    SUMMARY_NAME,
    episode_curve,
    moving_average,
    new_figure,
    read_metrics,
    save_returns_figure,
)

METRIC = "return_mean100_final"
BEST = "return_mean100_best"
REPORT_MD, REPORT_JSON, REPORT_PNG = "report.md", "report.json", "report.png"
GRID_POINTS = 200


@dataclass
class Job:
    """One finished (or stopped) job of the sweep."""

    path: Path
    summary: dict[str, Any]
    overrides: list[str]  # every override of the job except the seed

    @property
    def seed(self) -> int | None:
        return self.summary.get("seed")


@dataclass
class Setting:
    """The jobs that differ only in their seed."""

    label: str
    overrides: list[str]
    jobs: list[Job] = field(default_factory=list)

    def values(self, key: str) -> list[float]:
        return [j.summary[key] for j in self.jobs if j.summary.get(key) is not None]

    def stats(self, key: str) -> dict[str, Any]:
        """Mean and sample std across seeds (std is None for a single seed)."""
        values = self.values(key)
        return {"mean": float(np.mean(values)) if values else None,
                "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                "values": values}

    @property
    def sort_key(self) -> float:
        mean = self.stats(METRIC)["mean"]
        return -np.inf if mean is None else mean


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _without_seed(overrides: list[str]) -> list[str]:
    return [o for o in overrides if _override_key(o) != "seed"]


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _config_overrides(summaries: list[dict[str, Any]]) -> list[list[str]]:
    """For jobs not started by Hydra: the config values that differ between the jobs."""
    flats = [_flatten(s.get("config") or {}) for s in summaries]
    keys = sorted({k for f in flats for k in f})
    varying = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]
    return [[f"{k}={json.dumps(f.get(k))}" for k in varying] for f in flats]


def find_jobs(sweep_dir: Path) -> tuple[list[Job], list[str]]:
    """The jobs under ``sweep_dir`` that wrote a summary.json, and notes on what was skipped."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise UserError(f"{sweep_dir} is not a directory; pass a multirun directory, e.g. "
                        f"multirun/2026-01-31/12-00-00")
    notes: list[str] = []
    paths = sorted(p for p in sweep_dir.rglob(SUMMARY_NAME)
                   if not any(part.startswith(".") or part == "wandb"
                              for part in p.relative_to(sweep_dir).parts[:-1]))
    summaries, dirs = [], []
    for path in paths:
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            notes.append(f"skipped {path}: unreadable ({type(exc).__name__})")
            continue
        if not isinstance(summary, dict):
            notes.append(f"skipped {path}: not an rlplug summary")
            continue
        summaries.append(_clean_summary(summary))
        dirs.append(path.parent)
    if not summaries:
        raise UserError(f"no {SUMMARY_NAME} under {sweep_dir}; pass the directory of a multirun "
                        f"(python -m rlplug -m ...) whose jobs have finished")
    started = sorted(p.parent for p in sweep_dir.glob(f"*/{METRICS_NAME}"))
    unfinished = [d.name for d in started if d not in dirs]
    if unfinished:
        notes.append(f"{len(unfinished)} job(s) without {SUMMARY_NAME} (still running or killed): "
                     + ", ".join(unfinished))
    override_files = [d / ".hydra" / "overrides.yaml" for d in dirs]
    overrides = None
    if all(f.is_file() for f in override_files):
        overrides = [_load_overrides(f) for f in override_files]
    if overrides is None or any(o is None for o in overrides):
        overrides = _config_overrides(summaries)
    jobs = [Job(d, s, sorted(_without_seed(o)))
            for d, s, o in zip(dirs, summaries, overrides, strict=True)]
    return jobs, notes


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _clean_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary.json as the report reads it: fields of the wrong type (a hand-edited or foreign
    file) count as missing instead of failing the whole report."""
    clean = dict(summary)
    for key in (METRIC, BEST, "env_steps"):
        if key in clean and not _is_number(clean[key]):
            clean[key] = None
    if not (isinstance(clean.get("seed"), int) and not isinstance(clean.get("seed"), bool)):
        clean["seed"] = None
    if not isinstance(clean.get("status"), str):
        clean["status"] = "?"
    if not isinstance(clean.get("config"), dict):
        clean["config"] = {}
    return clean


def _load_overrides(path: Path) -> list[str] | None:
    """A job's Hydra overrides (a YAML list of strings, read without running anything); None
    if the file is not that."""
    try:
        loaded = OmegaConf.to_container(OmegaConf.load(path))
    except Exception:  # noqa: BLE001 - a damaged file: fall back to the configs
        return None
    if not isinstance(loaded, list) or not all(isinstance(o, str) for o in loaded):
        return None
    return loaded


def group_settings(jobs: list[Job]) -> tuple[list[Setting], list[str]]:
    """Settings sorted by their mean final return (best first), and the overrides every job
    shares (left out of the settings' labels)."""
    common = sorted(set.intersection(*(set(j.overrides) for j in jobs)))
    settings: dict[tuple[str, ...], Setting] = {}
    for job in jobs:
        varying = [o for o in job.overrides if o not in common]
        key = tuple(varying)
        if key not in settings:
            settings[key] = Setting(" ".join(varying) or "(all jobs)", list(job.overrides))
        settings[key].jobs.append(job)
    for setting in settings.values():
        setting.jobs.sort(key=lambda j: (j.seed is None, j.seed))
    return sorted(settings.values(), key=lambda s: s.sort_key, reverse=True), common


def _fmt(stats: dict[str, Any]) -> str:
    if stats["mean"] is None:
        return "-"
    return f"{stats['mean']:.1f}" if stats["std"] is None else \
        f"{stats['mean']:.1f} ± {stats['std']:.1f}"


def markdown(sweep_dir: Path, settings: list[Setting], common: list[str],
             notes: list[str]) -> str:
    """The report as a markdown table, best setting first."""
    lines = [f"# Sweep {sweep_dir}", ""]
    if common:
        lines += [f"Shared overrides: `{' '.join(common)}`", ""]
    lines += [f"Return = mean over the last {WINDOW} episodes at the end of training "
              f"(`{METRIC}`); best = the highest {WINDOW}-episode mean during training. "
              f"Mean ± std across seeds.", "",
              "| rank | setting | seeds | return | best | env steps | status |",
              "|---:|---|---:|---|---|---:|---|"]
    for rank, s in enumerate(settings, 1):
        seeds = [j.seed for j in s.jobs]
        status = Counter(j.summary.get("status", "?") for j in s.jobs)
        steps = [j.summary.get("env_steps") or 0 for j in s.jobs]
        lines.append(
            f"| {rank} | `{s.label}` | {len(seeds)} ({', '.join(map(str, seeds))}) | "
            f"{_fmt(s.stats(METRIC))} | {_fmt(s.stats(BEST))} | {int(np.mean(steps))} | "
            f"{', '.join(f'{n} {k}' for k, n in sorted(status.items()))} |")
    if notes:
        lines += [""] + [f"Note: {n}" for n in notes]
    return "\n".join(lines) + "\n"


def as_json(sweep_dir: Path, settings: list[Setting], common: list[str],
            notes: list[str]) -> dict[str, Any]:
    return {"sweep": str(sweep_dir), "metric": METRIC, "shared_overrides": common, "notes": notes,
            "settings": [{
                "rank": rank, "setting": s.label, "overrides": s.overrides,
                "seeds": [j.seed for j in s.jobs], METRIC: s.stats(METRIC), BEST: s.stats(BEST),
                "env_steps": [j.summary.get("env_steps") for j in s.jobs],
                "status": [j.summary.get("status") for j in s.jobs],
                "jobs": [j.path.name for j in s.jobs]} for rank, s in enumerate(settings, 1)]}


def job_curve(job: Job, grid: np.ndarray) -> np.ndarray | None:
    """The job's 100-episode moving average of returns on ``grid`` (NaN outside its episodes)."""
    steps, returns = episode_curve(read_metrics(job.path / METRICS_NAME))
    if steps.size == 0:
        return None
    return np.interp(grid, steps, moving_average(returns, WINDOW), left=np.nan, right=np.nan)


def mean_curve(setting: Setting, grid: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
    """The setting's mean curve and sample std across seeds on ``grid``, the mask of grid points
    every seed covers (between its first and last episode), and the number of seeds with episodes.
    None if no job finished an episode."""
    curves = [c for c in (job_curve(j, grid) for j in setting.jobs) if c is not None]
    if not curves:
        return None
    stacked = np.vstack(curves)
    covered = ~np.isnan(stacked).any(axis=0)
    filled = np.where(np.isnan(stacked), 0.0, stacked)  # masked out below; avoids NaN warnings
    mean = filled.mean(axis=0)
    std = filled.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros_like(mean)
    return mean, std, covered, len(curves)


def plot_curves(settings: list[Setting], out_path: Path, title: str) -> Path:
    """Mean learning curve per setting with a +/- std band across its seeds."""
    last = max((j.summary.get("env_steps") or 0 for s in settings for j in s.jobs), default=0)
    grid = np.linspace(0, max(last, 1), GRID_POINTS)
    fig, ax = new_figure(8, 4.5)
    for i, setting in enumerate(settings):
        curve = mean_curve(setting, grid)
        if curve is None:
            continue
        mean, std, covered, n = curve
        color = f"C{i % 10}"
        ax.plot(grid[covered], mean[covered], color=color, lw=2, label=f"{setting.label} (n={n})")
        if n > 1:
            ax.fill_between(grid[covered], (mean - std)[covered], (mean + std)[covered],
                            color=color, alpha=0.2, lw=0)
    return save_returns_figure(fig, ax, out_path, title, f"return (mean of last {WINDOW} episodes)")


def write_report(sweep_dir: Path) -> tuple[str, list[Path]]:
    """Build the report of ``sweep_dir``; returns the markdown and the files written."""
    sweep_dir = Path(sweep_dir)
    jobs, notes = find_jobs(sweep_dir)
    settings, common = group_settings(jobs)
    text = markdown(sweep_dir, settings, common, notes)
    md, js, png = (sweep_dir / REPORT_MD, sweep_dir / REPORT_JSON, sweep_dir / REPORT_PNG)
    md.write_text(text, encoding="utf-8")
    js.write_text(json.dumps(as_json(sweep_dir, settings, common, notes), indent=2) + "\n",
                  encoding="utf-8")
    plot_curves(settings, png, f"{sweep_dir.name}: mean ± std across seeds")
    return text, [md, js, png]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with report_user_errors("rlplug.report"):
        if len(argv) != 1 or argv[0].startswith("-"):
            raise UserError("usage: python -m rlplug.report <multirun dir>")
        text, files = write_report(Path(argv[0]))
    print(text, end="")
    print("wrote " + ", ".join(str(f) for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
