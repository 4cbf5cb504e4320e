"""Hydra multiruns: one W&B run per job in one group, the report on a real sweep, and the joblib
launcher running jobs in parallel with process workers inside its (loky) worker processes.

Sweeps run as subprocesses, exactly as a user types them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlplug.app import sweep_group

TESTS_DIR = Path(__file__).resolve().parent
TINY = ["env=cartpole", "progress=false", "checkpoint.every_steps=0"]


@pytest.fixture
def wandb_records(monkeypatch: pytest.MonkeyPatch):
    """The test helper module that reads .wandb files (tests/wandb_records.py)."""
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    import wandb_records

    return wandb_records


def run(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                            cwd=cwd, timeout=timeout)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result


def jobs_of(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if (p / "summary.json").exists())


def test_sweep_group_keeps_the_date_of_default_sweep_dirs() -> None:
    assert sweep_group("multirun/2026-01-31/12-30-05") == "2026-01-31_12-30-05"
    assert sweep_group("/data/sweeps/lr_scan") == "lr_scan"


def test_multirun_logs_one_wandb_run_per_job_in_one_group_and_reports_it(
        tmp_path: Path, wandb_records) -> None:
    sweep = tmp_path / "lr_scan"
    run("rlplug", "-m", "seed=0,1", "total_steps=3000", "executor=thread", *TINY,
        f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    jobs = jobs_of(sweep)
    assert len(jobs) == 2

    runs = []
    for job in jobs:
        (path,) = wandb_records.run_files(job)
        runs.append(wandb_records.read_run(path))
    assert [r.group for r in runs] == ["lr_scan", "lr_scan"]
    assert [r.job_type for r in runs] == ["train", "train"]
    assert runs[0].run_id != runs[1].run_id
    # run name = the job's overrides (Hydra's override_dirname)
    assert "seed=0" in runs[0].name and "seed=1" in runs[1].name
    assert all("total_steps=3000" in r.name for r in runs)
    summaries = [json.loads((job / "summary.json").read_text()) for job in jobs]
    assert [r.summary["return_mean100_final"] for r in runs] == \
        [s["return_mean100_final"] for s in summaries]

    result = run("rlplug.report", str(sweep), cwd=tmp_path)
    md = (sweep / "report.md").read_text()
    assert md in result.stdout
    assert "| 1 | `(all jobs)` | 2 (0, 1) |" in md
    report = json.loads((sweep / "report.json").read_text())
    (setting,) = report["settings"]
    assert setting["seeds"] == [0, 1]
    assert setting["return_mean100_final"]["values"] == [s["return_mean100_final"]
                                                         for s in summaries]
    assert (sweep / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_joblib_launcher_runs_jobs_with_process_workers(tmp_path: Path, wandb_records) -> None:
    sweep = tmp_path / "parallel"
    result = run("rlplug", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1",
                 "total_steps=2000", "executor=process", "executor.workers=1", *TINY,
                 f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert "Joblib.Parallel(n_jobs=2" in result.stdout + result.stderr
    jobs = jobs_of(sweep)
    assert len(jobs) == 2
    for job in jobs:
        summary = json.loads((job / "summary.json").read_text())
        assert (summary["status"], summary["env_steps"]) == ("completed", 2000), summary["error"]
        assert summary["episodes"] > 0
        (path,) = wandb_records.run_files(job)
        assert wandb_records.read_run(path).group == "parallel"
