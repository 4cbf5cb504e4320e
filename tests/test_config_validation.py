"""Bad configs fail before anything runs: one line on stderr naming the key, exit code 2, no run
directory; and every shipped preset composes and validates."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from rlplug.build import build_algorithm
from rlplug.cli import group_options
from rlplug.config import to_run_config
from rlplug.envs import probe_env
from rlplug.plugins import install_search_path

# Would train quickly if validation let a bad value through (and then leave outputs behind).
BASE = ("env=cartpole", "executor=thread", "executor.workers=1", "total_steps=500",
        "logger.mode=disabled", "progress=false")

BAD_INPUTS = [
    # (overrides, fragments the one line must contain)
    (["algo.lrr=1"], ["algo.lrr", "Did you mean 'algo.lr'?"]),
    (["+algo.lrr=1"], ["algo.lrr", "Did you mean 'algo.lr'?"]),  # "+" passes Hydra's own check
    (["algo.lr=abc"], ["algo.lr", "abc"]),
    (["env.id=???"], ["env.id", "missing"]),
    (["algo.lr=0"], ["algo.lr", "must be > 0"]),
    (["algo.gamma=1.5"], ["algo.gamma", "(0, 1]"]),
    (["executor.workers=0"], ["executor.workers", ">= 1"]),
    (["algo.n_steps=0"], ["algo.n_steps", ">= 1"]),
    (["total_steps=0"], ["total_steps", ">= 1"]),
    (["algo=a3cc"], ["unknown algo 'a3cc'", "installed: a3c", "Did you mean 'a3c'?"]),
    (["env.id=CartPoel-v1"], ["CartPoel-v1", "Did you mean 'CartPole-v1'?"]),
    (["algo.lr=1e-3,2e-3"], ["algo.lr=1e-3,2e-3", "--multirun"]),  # a sweep without -m
]


def _no_run_left(cwd: Path) -> None:
    assert not list(cwd.rglob("checkpoint.pt")), "a run started despite the bad input"
    assert not (cwd / "outputs").exists() and not (cwd / "multirun").exists()


@pytest.mark.parametrize("overrides,fragments", BAD_INPUTS,
                         ids=[" ".join(o) for o, _ in BAD_INPUTS])
def test_bad_input_is_one_line_naming_the_key(overrides, fragments, run_rlplug, one_line_error,
                                              tmp_path) -> None:
    line = one_line_error(run_rlplug(*BASE, *overrides))
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in: {line}"
    _no_run_left(tmp_path)


@pytest.mark.parametrize("sweep", [["seed=0,1", "algo.lr=0"], ["algo.lr=1e-3,0"]],
                         ids=["every-job-bad", "second-job-bad"])
def test_multirun_with_a_bad_job_fails_before_any_job_starts(sweep, run_rlplug, one_line_error,
                                                             tmp_path) -> None:
    line = one_line_error(run_rlplug("-m", *BASE, *sweep))
    assert "algo.lr" in line and "must be > 0" in line
    _no_run_left(tmp_path)


# -- every shipped preset --------------------------------------------------------------------------
def _compose(*overrides: str):
    install_search_path()
    with initialize_config_module(config_module="rlplug.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_presets_are_found() -> None:
    assert {"cartpole", "pendulum", "acrobot", "mountaincar_continuous"} <= set(group_options("env"))
    assert {"cartpole", "pendulum"} <= set(group_options("experiment"))


@pytest.mark.parametrize("env", group_options("env"))
def test_every_env_preset_composes_and_validates(env: str) -> None:
    run = to_run_config(_compose(f"env={env}"))
    spec = probe_env(run.env)
    assert spec.env_id == run.env.id
    build_algorithm(run, spec)


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_every_experiment_preset_composes_and_validates(experiment: str) -> None:
    cfg = _compose(f"experiment={experiment}")
    run = to_run_config(cfg)
    # an experiment named after an env preset trains on that env (not on the default one)
    if experiment in group_options("env"):
        assert cfg.env.id == _compose(f"env={experiment}").env.id
    assert run.algo.name == "a3c" and run.network.name and run.executor.name
    build_algorithm(run, probe_env(run.env))
