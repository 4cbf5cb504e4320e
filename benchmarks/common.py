"""Helpers shared by the benchmarks: run one training job in a fresh process and read its files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def run_job(overrides: list[str], workdir: Path | None = None, timeout: float = 3600) -> dict[str, Any]:
    """Train with ``python -m benchmarks.job`` in a fresh process (so peak-RSS readings are per
    job); returns the summary plus the run dir and the peak RSS of the main process and workers."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="rlplug-bench-"))
    run_dir = workdir / "run"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "benchmarks.job", f"hydra.run.dir={run_dir}", "progress=false",
           "logger.mode=disabled", "checkpoint.every_steps=0", *overrides]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.update(json.loads((run_dir / "rusage.json").read_text()))
    summary["run_dir"] = str(run_dir)
    return summary


def run_command(overrides: list[str], run_dir: Path, *, wandb: bool = True,
                target: float | None = None) -> dict[str, Any]:
    """``python -m rlplug <overrides>`` as a user types it, in a fresh process (imports, W&B
    start-up and spawning the workers all count). Returns the run's summary, ``command_s`` (the
    command's wall time) and ``startup_s`` (launch -> the run's clock at 0: every wall time the run
    records plus ``startup_s`` is a time from the launch). With a ``target`` return, also
    ``reached_at_steps`` and ``reached_at_s`` (from the launch): when the mean of the last 100
    episodes first reached it (None if it never did). ``wandb=False`` turns W&B off."""
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    if not wandb:
        env["WANDB_MODE"] = "disabled"
        overrides = [*overrides, "logger.mode=disabled"]
    cmd = [sys.executable, "-m", "rlplug", *overrides, f"hydra.run.dir={run_dir}",
           "progress=false"]
    workdir = Path(run_dir).parent  # anything the run writes beside its directory stays there
    workdir.mkdir(parents=True, exist_ok=True)
    launched = time.time()
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    command_s = time.time() - launched
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    startup_s = round(summary["wall_origin_unix"] - launched, 2)
    job = {"summary": summary, "command_s": round(command_s, 2), "startup_s": startup_s}
    if target is not None:
        reached = first_reach(run_dir, target)
        job["reached_at_steps"] = reached and reached[0]
        job["reached_at_s"] = reached and round(startup_s + reached[1], 2)
    return job


def episodes(run_dir: str | Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    eps = [r for r in rows if r["kind"] == "episode"]
    eps.sort(key=lambda r: r["env_step"])
    return eps


def steady_steps_per_s(run_dir: str | Path, skip: float = 0.2) -> float:
    """Env steps per second after the first ``skip`` fraction of the run (excludes start-up)."""
    eps = episodes(run_dir)
    total = eps[-1]["env_step"]
    start = next(r for r in eps if r["env_step"] >= skip * total)
    end = eps[-1]
    return (end["env_step"] - start["env_step"]) / max(end["wall_s"] - start["wall_s"], 1e-9)


def first_reach(run_dir: str | Path, threshold: float, window: int = 100) -> tuple[int, float] | None:
    """(env steps, wall seconds) when the mean of the last ``window`` returns first reached
    ``threshold`` (needs a full window), or None."""
    eps = episodes(run_dir)
    returns = np.array([r["return"] for r in eps])
    for i in range(window - 1, len(eps)):
        if returns[i - window + 1: i + 1].mean() >= threshold:
            return eps[i]["env_step"], eps[i]["wall_s"]
    return None


def fmt(value: Any, spec: str = ".1f") -> str:
    """A table cell: ``value`` formatted with ``spec``, or ``-`` when there is none."""
    return "-" if value is None else format(value, spec)


def write_results(name: str, markdown: str, data: Any) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(markdown)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")


def rows_per_run(cases: Iterable[str], seeds: Iterable[int],
                 one_row: Callable[[str, int, Path], dict[str, Any]],
                 hide: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """``one_row(case, seed, run_dir)`` for every case and seed, each run in a fresh temporary
    directory (deleted once its row is built); prints each row as it comes (without the keys in
    ``hide``, e.g. a whole learning curve)."""
    rows = []
    for case in cases:
        for seed in seeds:
            with tempfile.TemporaryDirectory(prefix="rlplug-bench-") as tmp:
                row = one_row(case, seed, Path(tmp) / "run")
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k not in hide}), flush=True)
    return rows
