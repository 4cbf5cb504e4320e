"""One run per run directory.

* A run holds a lock on its directory (``.rlplug.lock``, ``fcntl.flock``) and on the run it
  resumes, until its last output is written: a second run or resume into it, or a second resume
  of the same run, is refused with one line (exit 2), also when both start at the same moment.
* A fresh run into a directory that holds another run's outputs is refused with one line naming
  ``resume=``, and leaves the old run's files as they were.
* Default run directories are unique: two runs started in the same second get two directories.

Real ``python -m rlplug`` processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from rlplug.app import sweep_group
from rlplug.outputs import read_metrics
from rlplug.rundir import register_resolvers

RUN = ["env=cartpole", "executor=thread", "executor.workers=1", "logger.mode=disabled",
       "progress=false"]
HANG_GUARD_S = 300


def start(*args: str, cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.Popen([sys.executable, "-m", "rlplug", *RUN, *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=HANG_GUARD_S)
    return proc.returncode, err


def one_line(code: int, err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("rlplug: error: "), \
        f"exit {code}:\n{err[-3000:]}"
    return lines[0]


def fingerprint(run_dir: Path) -> dict[str, str]:
    """Every file of a run directory (but its lock file) and a hash of its content."""
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != ".rlplug.lock"}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("finished")
    code, err = finish(start("total_steps=300", f"hydra.run.dir={folder / 'run'}", cwd=folder))
    assert code == 0, err[-3000:]
    return folder / "run"


def wait_for_steps_past(run_dir: Path, steps: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while max((r.get("env_step", 0) for r in read_metrics(run_dir / "metrics.jsonl")),
              default=0) <= steps:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.05)


def test_a_run_being_resumed_cannot_be_resumed_or_entered_again(finished_run, tmp_path):
    original = fingerprint(finished_run)
    first = tmp_path / "first"
    resuming = start(f"resume={finished_run}", "total_steps=100000000",
                     f"hydra.run.dir={first}", cwd=tmp_path)
    try:
        wait_for_steps_past(first, 300, resuming)

        # Three attempts at once (each is refused by the resuming run's locks alone, so they
        # need not wait for one another's start-up): a second resume of the same run, into its
        # own directory; the same run resumed in place; another run into the directory the
        # resume is writing.
        attempts = [start(f"resume={finished_run}", "total_steps=600",
                          f"hydra.run.dir={tmp_path / 'second'}", cwd=tmp_path),
                    start(f"resume={finished_run}", "total_steps=600",
                          f"hydra.run.dir={finished_run}", cwd=tmp_path),
                    start("total_steps=600", f"hydra.run.dir={first}", cwd=tmp_path)]
        results = [finish(attempt) for attempt in attempts]
        second, in_place, into_first = [one_line(*result) for result in results]
        assert f"the run in {finished_run} is in use by another rlplug run (pid {resuming.pid}" \
            in second
        assert not (tmp_path / "second").exists()
        assert f"run directory {finished_run} is in use by another rlplug run" in in_place
        assert f"run directory {first} is in use by another rlplug run (pid {resuming.pid}" \
            in into_first
    finally:
        resuming.send_signal(signal.SIGINT)
        code, err = finish(resuming)
    assert code == 130, err[-3000:]
    assert fingerprint(finished_run) == original  # the source was only read

    # once that run has ended, its source can be resumed again
    code, err = finish(start(f"resume={finished_run}", "total_steps=600",
                             f"hydra.run.dir={tmp_path / 'later'}", cwd=tmp_path))
    assert code == 0, err[-3000:]


def test_two_resumes_of_one_run_started_together_one_is_refused(finished_run, tmp_path):
    procs = [start(f"resume={finished_run}", "total_steps=20000",
                   f"hydra.run.dir={tmp_path / f'resume{i}'}", cwd=tmp_path) for i in range(2)]
    results = sorted((finish(p) for p in procs), key=lambda r: r[0])

    (ok_code, ok_err), (refused_code, refused_err) = results
    assert ok_code == 0, ok_err[-3000:]
    assert "is in use by another rlplug run" in one_line(refused_code, refused_err)
    completed = [d for d in tmp_path.iterdir() if (d / "summary.json").exists()
                 and json.loads((d / "summary.json").read_text())["status"] == "completed"]
    assert len(completed) == 1


def test_fresh_run_into_a_directory_with_another_runs_outputs_is_refused(finished_run, tmp_path):
    before = fingerprint(finished_run)

    line = one_line(*finish(start("seed=7", "total_steps=300", f"hydra.run.dir={finished_run}",
                                  cwd=tmp_path)))

    assert f"run directory {finished_run} already holds another run's outputs" in line
    assert f"resume={finished_run}" in line
    assert fingerprint(finished_run) == before  # not a byte changed, .hydra/ included


def test_runs_started_in_the_same_second_get_their_own_directories(tmp_path):
    # the default names are <date>/<time>_<random suffix>, for runs and sweeps
    register_resolvers()
    with initialize_config_module(config_module="rlplug.conf", version_base="1.3"):
        hydra_cfg = compose("config", return_hydra_config=True).hydra
    for key in ("run", "sweep"):
        default = OmegaConf.to_container(hydra_cfg[key], resolve=False)["dir"]
        assert default.endswith("/${now:%H-%M-%S}_${rlplug_uid:}"), default
    # two runs whose <date>/<time> part is the same second (frozen here, to be sure of it)
    same_second = "hydra.run.dir=outputs/2026-01-31/12-00-00_${rlplug_uid:}"
    procs = [start(f"seed={seed}", "total_steps=2000", same_second, cwd=tmp_path)
             for seed in (1, 2)]
    for proc in procs:
        code, err = finish(proc)
        assert code == 0, err[-3000:]

    runs = sorted((tmp_path / "outputs" / "2026-01-31").iterdir())
    assert len(runs) == 2 and all(r.name.startswith("12-00-00_") for r in runs), runs
    seeds = sorted(json.loads((r / "summary.json").read_text())["seed"] for r in runs)
    assert seeds == [1, 2]
    for run_dir in runs:  # each directory holds one run's episodes only
        summary = json.loads((run_dir / "summary.json").read_text())
        episodes = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == "episode"]
        assert len(episodes) == summary["episodes"]
        assert max(r["env_step"] for r in episodes) <= summary["env_steps"] == 2000


def test_two_runs_into_one_explicit_directory_at_once_one_is_refused(tmp_path):
    # what a per-second name gave two runs started in the same second
    same = tmp_path / "same"
    procs = [start(f"seed={seed}", "total_steps=20000", f"hydra.run.dir={same}", cwd=tmp_path)
             for seed in (1, 2)]
    results = sorted((finish(p) for p in procs), key=lambda r: r[0])

    (ok_code, ok_err), (refused_code, refused_err) = results
    assert ok_code == 0, ok_err[-3000:]
    line = one_line(refused_code, refused_err)
    assert "is in use by another rlplug run" in line or "already holds another run's" in line
    summary = json.loads((same / "summary.json").read_text())
    episodes = [r for r in read_metrics(same / "metrics.jsonl") if r["kind"] == "episode"]
    assert summary["status"] == "completed" and len(episodes) == summary["episodes"]
    assert summary["env_steps"] == 20000


def test_sweep_groups_of_default_sweep_dirs_keep_date_time_and_suffix() -> None:
    assert sweep_group("multirun/2026-01-31/12-30-05_3fa9c1") == "2026-01-31_12-30-05_3fa9c1"
    assert sweep_group("multirun/2026-01-31/12-30-05") == "2026-01-31_12-30-05"
    assert sweep_group("/data/sweeps/lr_scan") == "lr_scan"
