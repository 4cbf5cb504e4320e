"""The CLI end to end, in a subprocess: ``--list``, and a short real run and the files it leaves."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import math

import pytest

from rlplug.checkpoint import load_checkpoint

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TOTAL_STEPS = 3001  # not a multiple of n_steps * workers: the budget must still be exact


@pytest.mark.parametrize("flag", ["--list", "plugins"])
def test_list_shows_every_plugin_with_its_distribution_and_version(flag, run_rlplug) -> None:
    proc = run_rlplug(flag)
    assert proc.returncode == 0, proc.stderr
    version = metadata.version("rlplug-a3c")
    sections: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        if not line.startswith(" "):
            sections[line.rstrip(":")] = []
        else:
            sections[list(sections)[-1]].append(line.split())
    expected = {"rlplug.algos": {"a3c"}, "rlplug.networks": {"ff", "lstm"},
                "rlplug.executors": {"thread", "process"}, "rlplug.configs": {"a3c"}}
    for group, names in expected.items():
        rows = {row[0]: row for row in sections[group]}
        assert names <= set(rows), f"{group}: {sorted(rows)}"
        for name in names:
            assert rows[name][1:3] == ["rlplug-a3c", version], rows[name]
            assert rows[name][-1] == "[ok]", rows[name]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """One real CLI run shared by the tests below: CartPole, 2 process workers, 3001 steps."""
    import os
    import subprocess
    import sys

    cwd = tmp_path_factory.mktemp("cli")
    run_dir = cwd / "run"
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "rlplug", "env=cartpole", "executor=process", "executor.workers=2",
         f"total_steps={TOTAL_STEPS}", "logger.mode=disabled", "progress=false",
         "logger.train_log_every_s=0.2", f"hydra.run.dir={run_dir}"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    return proc, run_dir


def test_short_run_exits_zero_and_leaves_every_output(short_run) -> None:
    proc, run_dir = short_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("checkpoint.pt", "metrics.jsonl", "summary.json", "learning_curve.png"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir.parent / "outputs").exists(), "hydra.run.dir must be honoured"


def _rows(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]


def test_metrics_have_episode_and_train_rows(short_run) -> None:
    _, run_dir = short_run
    rows = _rows(run_dir)
    episodes = [r for r in rows if r["kind"] == "episode"]
    train = [r for r in rows if r["kind"] == "train"]
    assert len(episodes) > 50 and train
    for row in episodes:
        assert {"env_step", "episode", "worker", "return", "length", "wall_s"} <= set(row)
        assert 0 < row["env_step"] <= TOTAL_STEPS
        assert row["worker"] in (0, 1)
        assert row["return"] == row["length"]  # CartPole pays 1 per step
    assert [r["episode"] for r in episodes] == list(range(1, len(episodes) + 1))
    assert sum(r["length"] for r in episodes) <= TOTAL_STEPS
    for row in train:
        for key in ("policy_loss", "value_loss", "entropy", "grad_norm", "steps_per_s", "env_step",
                    "wall_s"):
            assert math.isfinite(row[key]), (key, row)
        assert 0 < row["entropy"] <= math.log(2) + 1e-6  # two actions
        assert row["value_loss"] >= 0 and row["grad_norm"] >= 0 and row["steps_per_s"] > 0


def test_summary_reports_the_run(short_run) -> None:
    _, run_dir = short_run
    summary = json.loads((run_dir / "summary.json").read_text())
    episodes = [r["return"] for r in _rows(run_dir) if r["kind"] == "episode"]
    assert summary["status"] == "completed"
    assert summary["plugins"]["rlplug-a3c"] and summary["plugins"]["rlplug"]  # versions recorded
    assert summary["env_steps"] == TOTAL_STEPS
    assert summary["episodes"] == len(episodes)
    assert summary["wall_s"] > 0 and summary["steps_per_s"] > 0
    last100 = episodes[-100:]
    assert summary["return_mean100_final"] == pytest.approx(sum(last100) / len(last100))
    assert summary["return_mean100_best"] >= summary["return_mean100_final"] - 1e-9
    assert summary["config"]["total_steps"] == TOTAL_STEPS
    assert summary["config"]["env"]["id"] == "CartPole-v1"
    assert summary["config"]["executor"]["name"] == "process"
    assert load_checkpoint(run_dir)["env_steps"] == TOTAL_STEPS


def test_learning_curve_is_a_real_png(short_run) -> None:
    _, run_dir = short_run
    data = (run_dir / "learning_curve.png").read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    import matplotlib.image

    image = matplotlib.image.imread(run_dir / "learning_curve.png")
    height, width = image.shape[:2]
    assert height >= 200 and width >= 300
    assert image[..., :3].std() > 0.01, "the image is blank"
