"""W&B logging, checked by reading the offline run's own transaction log back (no mocks).

Every run here is real: real envs, real workers, real ``wandb`` in offline mode (the root
conftest points its directories at a temporary folder). The online test makes initialisation
fail without any network: no API key and a loopback address nobody listens on.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_module

from rlplug import messages
from rlplug.config import LoggerConfig, RunConfig, to_run_config
from rlplug.counters import SharedCounters
from rlplug.loggers.wandb_logger import WandbLogger
from rlplug.monitor import Monitor
from rlplug.outputs import read_metrics
from rlplug.plugins import install_search_path
from rlplug.run import train

TESTS_DIR = Path(__file__).resolve().parent
HISTORY_KEYS = ("episode/return", "episode/length", "train/policy_loss", "train/value_loss",
                "train/entropy", "train/grad_norm", "train/lr", "perf/steps_per_s")
TINY = ["env=cartpole", "executor=thread", "executor.workers=2", "progress=false",
        "checkpoint.every_steps=0"]


@pytest.fixture
def wandb_records(monkeypatch: pytest.MonkeyPatch):
    """The test helper module that reads .wandb files (tests/wandb_records.py)."""
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    import wandb_records

    return wandb_records


def compose_run(*overrides: str) -> RunConfig:
    install_search_path()
    with initialize_config_module(config_module="rlplug.conf", version_base="1.3"):
        return to_run_config(compose("config", overrides=[*TINY, *overrides]))


def step_metric_of(key: str, step_metrics: dict[str, str]) -> str | None:
    """The x-axis W&B uses for ``key``: its own define_metric, or the first matching glob."""
    if key in step_metrics:
        return step_metrics[key]
    return next((axis for pattern, axis in step_metrics.items() if fnmatch.fnmatch(key, pattern)),
                None)


def python(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)


def test_importing_rlplug_does_not_import_wandb() -> None:
    code = ("import sys, rlplug.run, rlplug.app, rlplug.evaluate, rlplug.report, "
            "rlplug.loggers.wandb_logger; print(sorted(m for m in sys.modules if m == 'wandb' "
            "or m.startswith('wandb.')))")
    result = python("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_disabled_run_never_imports_wandb_and_writes_no_wandb_dir(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    code = ("import sys\n"
            "from rlplug.__main__ import main\n"
            f"sys.argv = ['rlplug', *{[*TINY, 'total_steps=500', 'logger.mode=disabled']!r}, "
            f"'hydra.run.dir={run_dir}']\n"
            "main()\n"
            "print('wandb imported:', 'wandb' in sys.modules)\n")
    result = python("-c", code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wandb imported: False" in result.stdout
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    assert not (run_dir / "wandb").exists()


def test_wandb_mode_without_wandb_installed_is_a_one_line_error(tmp_path: Path) -> None:
    code = ("import sys\n"
            "sys.modules['wandb'] = None  # what Python does for a package that is not installed\n"
            "from rlplug.__main__ import main\n"
            f"sys.argv = ['rlplug', *{[*TINY, 'total_steps=500']!r}, 'hydra.run.dir=run']\n"
            "main()\n")
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    result = python("-c", code, cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines() == [
        "rlplug: error: logger.mode=offline needs wandb (an rlplug dependency): pip install "
        "wandb, or run without W&B: logger=none"], result.stderr
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # no worker started


def assert_episode_windows(logged: list[dict[str, Any]], episodes: list[dict[str, Any]]) -> None:
    """Each W&B episode row summarises the next ``episode/count`` episodes of metrics.jsonl."""
    assert sum(row["episode/count"] for row in logged) == len(episodes)
    start = 0
    for row in logged:
        window = episodes[start:start + row["episode/count"]]
        start += len(window)
        returns = [e["return"] for e in window]
        assert row["episode/return"] == pytest.approx(sum(returns) / len(returns))
        assert (row["episode/return_min"], row["episode/return_max"]) == (min(returns),
                                                                          max(returns))
        assert row["episode/length"] == pytest.approx(sum(e["length"] for e in window) / len(window))
        assert row["env_step"] == max(e["env_step"] for e in window)
        assert row["episode/index"] == window[-1]["episode"]


@pytest.mark.parametrize("every_s", [0.0, 0.5])
def test_episode_rows_summarise_every_episode_once(tmp_path: Path, wandb_records, every_s) -> None:
    """logger.episode_log_every_s: one W&B row per window (many episodes per row at 0.5 s early
    in a CartPole run); 0: a row per episode."""
    run = compose_run("total_steps=3000", "logger.mode=offline",
                      f"logger.episode_log_every_s={every_s}")
    assert train(run, tmp_path).status == "completed"
    wb = wandb_records.read_run(wandb_records.run_files(tmp_path)[0])
    episodes = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "episode"]
    logged = [row for row in wb.history if "episode/return" in row]
    assert_episode_windows(logged, episodes)
    if every_s == 0:
        assert [r["episode/return"] for r in logged] == [e["return"] for e in episodes]
    else:
        assert len(logged) < len(episodes)


def test_offline_run_logs_history_config_summary_and_model(tmp_path: Path,
                                                           wandb_records) -> None:
    run = compose_run("total_steps=3000", "seed=3", "logger.mode=offline", "logger.project=proj",
                      "logger.group=grp", "logger.name=tiny", "logger.tags=[a,b]",
                      "algo.lr_schedule=constant")  # train/lr is then algo.lr throughout
    result = train(run, tmp_path)
    assert result.status == "completed"

    files = wandb_records.run_files(tmp_path)
    assert len(files) == 1, files
    wb = wandb_records.read_run(files[0])
    summary = json.loads((tmp_path / "summary.json").read_text())

    # who the run is
    assert (wb.project, wb.group, wb.job_type, wb.name, wb.tags) == (
        "proj", "grp", "train", "tiny", ["a", "b"])
    assert wb.exit_code == 0
    # the resolved config, exactly as the run saved it
    config = {k: v for k, v in wb.config.items() if k != "_wandb"}
    assert config == summary["config"]
    assert config["seed"] == 3 and config["env"]["id"] == "CartPole-v1"

    # every key is charted against env_step
    missing = [k for k in HISTORY_KEYS if k not in wb.keys()]
    assert not missing, f"history lacks {missing}; it has {sorted(wb.keys())}"
    for key in HISTORY_KEYS:
        assert step_metric_of(key, wb.step_metrics) == "env_step", key

    # the episode rows summarise the run's episodes, in order, each of them once
    episodes = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "episode"]
    logged = [row for row in wb.history if "episode/return" in row]
    assert_episode_windows(logged, episodes)
    assert max(wb.column("env_step")) == 3000
    assert all(rate > 0 for rate in wb.column("perf/steps_per_s"))
    assert all(lr == pytest.approx(run.algo.lr) for lr in wb.column("train/lr"))

    # summary, learning-curve image and the final checkpoint as a model artifact
    for key in ("return_mean100_final", "return_mean100_best", "env_steps", "status"):
        assert wb.summary[key] == summary[key], key
    assert wb.summary["return_mean100_final"] is not None
    assert wb.column("learning_curve/_type") == ["image-file"]
    assert wb.artifacts == [("model", f"model-{wb.run_id}")]


def run_warned_and_kept_its_files(run_dir: Path, mode: str, warning: str,
                                  env: dict[str, str] | None = None) -> dict[str, Any]:
    """A 2000-step ``python -m rlplug`` run in ``run_dir`` with W&B trouble: it exits 0 after
    exactly one ``warning``, completed, with its checkpoint, metrics and curve. Its summary."""
    result = python("-m", "rlplug", *TINY, "total_steps=2000", mode,
                    f"hydra.run.dir={run_dir}", env=env, cwd=run_dir.parent)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert output.count(warning) == 1, output[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["env_steps"] == 2000
    for name in ("checkpoint.pt", "metrics.jsonl", "learning_curve.png"):
        assert (run_dir / name).stat().st_size > 0, name
    return summary


def test_online_init_failure_falls_back_to_offline_and_keeps_local_files(tmp_path: Path,
                                                                         wandb_records) -> None:
    env = dict(os.environ)
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE"):
        env.pop(name, None)
    # Nothing to authenticate with, and only a loopback port nobody listens on to talk to.
    env.update(WANDB_BASE_URL="http://127.0.0.1:9", NETRC=str(tmp_path / "no-netrc"),
               RLPLUG_WANDB_INIT_TIMEOUT="5")
    run_dir = tmp_path / "run"
    summary = run_warned_and_kept_its_files(run_dir, "logger.mode=online",
                                            "W&B online init failed", env=env)
    files = wandb_records.run_files(run_dir)
    assert len(files) == 1 and files[0].parent.name.startswith("offline-run-")
    wb = wandb_records.read_run(files[0])
    assert wb.summary["return_mean100_final"] == summary["return_mean100_final"]
    assert "episode/return" in wb.keys() and wb.exit_code == 0


def test_wandb_that_cannot_start_is_a_warning_and_the_run_keeps_its_own_files(
        tmp_path: Path) -> None:
    """W&B starts once the workers run (its import and init overlap with their start-up), so a
    W&B that cannot start then (here: its directory is taken by a file) must not stop the run."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "wandb").write_text("not a directory")
    run_warned_and_kept_its_files(run_dir, "logger.mode=offline", "W&B could not start")


def test_every_numeric_train_statistic_of_any_algorithm_is_charted(tmp_path: Path,
                                                                   wandb_records) -> None:
    """A made-up algorithm's statistics (no A3C key among them) reach W&B as ``train/<key>``
    through the main process's real path (Monitor -> WandbLogger); text values are left out."""
    logger = WandbLogger(LoggerConfig(mode="offline", project="fake-algo"), {"algo": "ppo-ish"},
                         tmp_path, group=None, name=None)
    monitor = Monitor(tmp_path, SharedCounters(), 1000, [logger], show_progress=False)
    sent = [messages.train(0, 100, kl_divergence=0.02, clip_fraction=0.25, epochs=4),
            messages.train(1, 200, kl_divergence=0.03, clip_fraction=0.5, epochs=4,
                           steps_per_s=1234.0),
            {**messages.train(0, 300, kl_divergence=0.04), "phase": "warm-up", "note": None},
            messages.worker_restart(1, 1, 350, 20, "RuntimeError: boom", "Traceback ...")]
    for msg in sent:
        monitor.on_message(msg)
    monitor.close()
    logger.finish({"env_steps": 350, "status": "completed"}, None, None, None, 0)

    (path,) = wandb_records.run_files(tmp_path)
    wb = wandb_records.read_run(path)
    trained = [row for row in wb.history if "train/kl_divergence" in row]
    assert [row["train/kl_divergence"] for row in trained] == pytest.approx([0.02, 0.03, 0.04])
    assert wb.column("train/clip_fraction") == pytest.approx([0.25, 0.5])
    assert wb.column("train/epochs") == [4, 4]
    assert [row["env_step"] for row in trained] == [100, 200, 300]
    assert wb.column("perf/worker1_steps_per_s") == [1234.0]
    assert wb.column("events/worker_restarts") == [1]
    charted = {k for k in wb.keys() if k.startswith("train/")}
    assert charted == {"train/kl_divergence", "train/clip_fraction", "train/epochs"}, charted
    for key in charted:
        assert step_metric_of(key, wb.step_metrics) == "env_step", key
