"""Evaluation during training and the policy a run keeps (rlplug.periodic_eval).

The evaluation returns are made known with a scripted third-party algorithm (a fake distribution
on PYTHONPATH, run through the real CLI in a subprocess): its "policy" is one number p that its
worker sets as training proceeds (a fixed schedule over env steps), and its actor plays p in an
env whose reward is the action, so an evaluation of p returns exactly 5 p (5-step episodes). The
schedule peaks in the middle of the run, so the best policy is not the final one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rlplug.checkpoint import load_checkpoint
from rlplug.outputs import read_metrics
from rlplug.periodic_eval import BEST_CHECKPOINT_NAME, choose_checkpoint

TESTS_DIR = Path(__file__).resolve().parent

SCRIPTED_ALGO = '''\
import time
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from hydra.core.config_store import ConfigStore

from rlplug import messages
from rlplug.contracts import Actor, Algorithm, SharedModel
from rlplug.envs import make_env

EPISODE_STEPS = 5


class ScoreEnv(gym.Env):
    """Reward = the action; 5-step episodes."""

    def __init__(self):
        self.observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = spaces.Box(-100.0, 100.0, (1,), np.float32)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(1, np.float32), float(action[0]), self.t >= EPISODE_STEPS, False, {}


if "Score-v0" not in gym.registry:
    gym.register("Score-v0", entry_point=ScoreEnv)


@dataclass
class ScriptedConfig:
    name: str = "scripted"
    phase_steps: int = 100  # env steps per phase of the schedule
    schedule: list[float] = field(default_factory=lambda: [1.0, 2.0, 9.0, 3.0, 4.0, 5.0])
    step_sleep_s: float = 0.01  # slow enough for the main process to evaluate in every phase


def register():
    ConfigStore.instance().store(group="algo", name="scripted", node=ScriptedConfig)
    return "pkg://scripted_algo.conf"


class ScalarModel(SharedModel):
    """The whole policy: one number."""

    def __init__(self):
        self.params = torch.zeros(1)
        self.steps = 0

    @property
    def num_parameters(self):
        return 1

    @property
    def version(self):
        return self.steps

    def pull(self, out):
        out.copy_(self.params)
        return self.steps

    def push(self, grad, lr):
        self.params.sub_(lr * grad)
        self.steps += 1
        return self.steps

    def state_dict(self):
        return {"params": self.params.clone(), "steps": self.steps}

    def load_state_dict(self, state):
        self.params.copy_(state["params"])
        self.steps = int(state["steps"])


class ScalarActor(Actor):
    def __init__(self, model):
        self.model = model

    def reset(self):
        pass

    def act(self, obs):
        return np.array([float(self.model.params[0])], np.float32)


class Scripted(Algorithm):
    def __init__(self, cfg, env_cfg, spec, build_network, seed):
        self.cfg, self.env_cfg = cfg, env_cfg
        self._model = ScalarModel()

    @property
    def model(self):
        return self._model

    def target(self, env_steps):
        schedule = self.cfg.schedule
        return schedule[min(env_steps // self.cfg.phase_steps, len(schedule) - 1)]

    def run_worker(self, ctx):
        env = make_env(self.env_cfg)
        env.reset(seed=ctx.seed)
        current = torch.zeros(1)
        while not ctx.stop_requested():
            granted = ctx.counters.reserve_steps(EPISODE_STEPS, ctx.total_steps)
            if granted == 0:
                break
            ctx.model.pull(current)
            total = 0.0
            for _ in range(granted):
                time.sleep(self.cfg.step_sleep_s)
                _, reward, _, _, _ = env.step(np.array([float(current[0])], np.float32))
                total += reward
            env.reset()
            # the policy "learns": set it for the steps done after this segment, then count them
            after = ctx.counters.env_steps + granted
            ctx.model.push(current - self.target(after), 1.0)
            after = ctx.counters.add(granted, 1)
            ctx.send(messages.episode(ctx.rank, after, total, granted))

    def actor(self, deterministic=True):
        return ScalarActor(self._model)
'''


@pytest.fixture(scope="module")
def scripted(make_module_distribution):
    return make_module_distribution("scripted-algo", "0.1", {
        "rlplug.algos": {"scripted": "scripted_algo:Scripted"},
        "rlplug.configs": {"scripted": "scripted_algo:register"}}, {
        "scripted_algo/__init__.py": SCRIPTED_ALGO,
        "scripted_algo/conf/__init__.py": ""})


SCRIPTED_RUN = ["algo=scripted", "env.id=scripted_algo:Score-v0", "executor=thread",
                "executor.workers=1", "total_steps=600", "eval.every_steps=100", "eval.episodes=3",
                "checkpoint.every_steps=0", "progress=false"]
SCHEDULE_RETURNS = [5.0 * p for p in (1.0, 2.0, 9.0, 3.0, 4.0, 5.0)]


def python(*args: str, pythonpath: tuple[Path, ...], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), str(TESTS_DIR),
                                         env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def train_scripted(scripted, run_dir: Path, *overrides: str) -> dict:
    proc = python("-m", "rlplug", *SCRIPTED_RUN, *overrides, f"hydra.run.dir={run_dir}",
                  pythonpath=(scripted.root,), cwd=run_dir.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((run_dir / "summary.json").read_text())


def evaluate_cli(scripted, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return python("-m", "rlplug.evaluate", *args, pythonpath=(scripted.root,), cwd=cwd)


@pytest.fixture(scope="module")
def scripted_run(scripted, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One scripted run (at least 6 s: its steps sleep), which the tests below only read (or
    resume and evaluate, which leave its checkpoints, metrics and W&B files as they are)."""
    run_dir = tmp_path_factory.mktemp("scripted") / "run"
    summary = train_scripted(scripted, run_dir, "logger.mode=offline")
    assert summary["status"] == "completed" and summary["env_steps"] == 600
    return run_dir, summary


def test_evaluations_come_at_the_configured_interval_with_the_configured_episodes(
        scripted_run) -> None:
    run_dir, summary = scripted_run
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == "eval"]
    steps = [r["env_step"] for r in rows]
    # one evaluation in each interval of 100 env steps (when the tick after it is due), then the
    # final one at the end of the run
    assert len(rows) == 6, steps
    for k, step in enumerate(steps[:-1], start=1):
        assert 100 * k <= step < 100 * (k + 1), steps
    assert steps[-1] == 600
    assert all(r["episodes"] == 3 and r["deterministic"] is True for r in rows)
    assert all("wall_s" in r and "return_std" in r for r in rows)
    # the returns are known: 5 x the policy's number in the phase the evaluation fell in
    assert [r["return_mean"] for r in rows] == SCHEDULE_RETURNS[1:] + [SCHEDULE_RETURNS[-1]]
    assert summary["eval_return_final"] == SCHEDULE_RETURNS[-1]
    assert summary["eval_return_best"] == max(SCHEDULE_RETURNS) == 45.0


def test_best_checkpoint_holds_the_policy_with_the_highest_evaluation_return(scripted_run) -> None:
    run_dir, _ = scripted_run
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == "eval"]
    best_row = max(rows, key=lambda r: r["return_mean"])
    best = load_checkpoint(run_dir / BEST_CHECKPOINT_NAME)
    assert best["eval"]["return_mean"] == best_row["return_mean"] == 45.0
    assert best["env_steps"] == best_row["env_step"]
    assert float(best["algorithm"]["model"]["params"][0]) == 9.0  # the policy that scored 45
    assert best["config"]["algo"]["name"] == "scripted"
    latest = load_checkpoint(run_dir / "checkpoint.pt")
    assert float(latest["algorithm"]["model"]["params"][0]) == 5.0
    # only improvements were marked (and saved)
    marked = [r["return_mean"] for r in rows if r.get("best")]
    assert marked == [10.0, 45.0]


def test_evaluate_uses_the_kept_policy_by_default_and_latest_on_request(scripted,
                                                                        scripted_run) -> None:
    run_dir, _ = scripted_run
    printed = {}
    for which in (None, "best", "latest"):
        args = [str(run_dir), "episodes=2"] + ([f"which={which}"] if which else [])
        proc = evaluate_cli(scripted, *args, cwd=run_dir)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "rlplug.evaluate:" not in proc.stderr  # no fallback note: the run has a best
        printed[which] = proc.stdout
        report = json.loads((run_dir / "eval.json").read_text())
        assert report["which"] == (which or "best")
        assert report["return_mean"] == (25.0 if which == "latest" else 45.0)
    assert "checkpoint_best.pt at" in printed[None] and "checkpoint.pt at" in printed["latest"]
    bad = evaluate_cli(scripted, str(run_dir), "which=newest", cwd=run_dir)
    assert bad.returncode == 2 and "which must be best or latest" in bad.stderr


def test_run_without_evaluation_has_no_best_and_evaluate_falls_back_to_latest(
        scripted, tmp_path: Path) -> None:
    run_dir = tmp_path / "noeval"
    summary = train_scripted(scripted, run_dir, "eval.every_steps=0", "logger.mode=disabled",
                             "total_steps=100")
    assert summary["eval_return_best"] is None and summary["eval_return_final"] is None
    assert not (run_dir / BEST_CHECKPOINT_NAME).exists()
    assert not [r for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == "eval"]
    proc = evaluate_cli(scripted, str(run_dir), "episodes=1", cwd=run_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "has no checkpoint_best.pt" in proc.stderr and "checkpoint.pt at" in proc.stdout
    assert json.loads((run_dir / "eval.json").read_text())["return_mean"] == 10.0  # 5 x 2.0


def test_evaluations_are_charted_in_wandb_against_env_step(scripted_run, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    import wandb_records

    run_dir, summary = scripted_run
    files = wandb_records.run_files(run_dir)
    assert len(files) == 1, files
    wb = wandb_records.read_run(files[0])
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == "eval"]
    logged = [h for h in wb.history if "eval/return_mean" in h]
    assert [h["eval/return_mean"] for h in logged] == [r["return_mean"] for r in rows]
    assert [h["eval/return_std"] for h in logged] == [r["return_std"] for r in rows]
    assert [h["env_step"] for h in logged] == [r["env_step"] for r in rows]
    assert wb.step_metrics.get("eval/*") == "env_step"
    assert wb.summary["eval_return_best"] == summary["eval_return_best"] == 45.0
    assert wb.summary["eval_return_final"] == summary["eval_return_final"]


def test_resume_keeps_the_best_so_far(scripted, scripted_run, tmp_path: Path) -> None:
    """A resumed run starts from the best value recorded (checkpoint_best.pt, copied into its
    directory): evaluations that do not beat it leave it in place."""
    run_dir, _ = scripted_run
    resumed_dir = tmp_path / "resumed"
    summary = train_scripted(scripted, resumed_dir, f"resume={run_dir}", "total_steps=800",
                             "logger.mode=disabled")
    assert summary["status"] == "completed" and summary["env_steps"] == 800
    new_rows = [r for r in read_metrics(resumed_dir / "metrics.jsonl")
                if r["kind"] == "eval" and r["env_step"] > 600]
    assert new_rows and all(r["return_mean"] == 25.0 for r in new_rows)
    assert not any(r.get("best") for r in new_rows)
    assert summary["eval_return_best"] == 45.0 and summary["eval_return_final"] == 25.0
    best = load_checkpoint(resumed_dir / BEST_CHECKPOINT_NAME)
    assert float(best["algorithm"]["model"]["params"][0]) == 9.0


def test_progress_shows_the_latest_evaluation(scripted, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RLPLUG_PROGRESS_EVERY_S", "0.2")  # plain progress lines (no terminal)
    run_dir = tmp_path / "progress"
    proc = python("-m", "rlplug", *SCRIPTED_RUN, "total_steps=200", "progress=true",
                  "logger.mode=disabled", f"hydra.run.dir={run_dir}", pythonpath=(scripted.root,),
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the bar (a terminal) shows eval=45.0, a plain progress line "eval 45.0": the final policy's
    assert re.search(r"eval[= ]45\.0", proc.stderr), proc.stderr[-3000:]


def test_choose_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    path, note = choose_checkpoint(tmp_path, "best")
    assert path == tmp_path / "checkpoint.pt" and note and "no checkpoint_best.pt" in note
    (tmp_path / BEST_CHECKPOINT_NAME).write_bytes(b"")
    assert choose_checkpoint(tmp_path) == (tmp_path / BEST_CHECKPOINT_NAME, None)
    assert choose_checkpoint(tmp_path, "latest") == (tmp_path / "checkpoint.pt", None)
    file = tmp_path / "checkpoint.pt"
    assert choose_checkpoint(file, "best") == (file, None)  # a file is taken as it is
