"""Bad input that used to end in a traceback (exit code 1) or to be accepted: now one line on
stderr (``rlplug: error: ...``), exit code 2, no run directory. Every case goes through a fresh
``python -m rlplug`` process.

Numbers that must be finite, seeds out of range, an env module that raises at import, W&B's
limits on project names and tags, unknown Hydra launchers, output directories that cannot be
written, and resuming with other ``env.normalize_obs`` / ``env.kwargs``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from rlplug.config import to_run_config
from rlplug.plugins import install_search_path
from rlplug.run import train

QUIET = ["env=cartpole", "executor=thread", "executor.workers=1", "logger.mode=disabled",
         "progress=false"]

CASES = {  # id: (overrides, fragments of the one line)
    "lr_inf": (["algo.lr=inf"], ["algo.lr must be a finite number, got inf"]),
    "reward_scale_inf": (["algo.reward_scale=inf"], ["algo.reward_scale must be a finite"]),
    "reward_offset_nan": (["algo.reward_offset=nan"], ["algo.reward_offset must be a finite",
                                                       "got nan"]),
    "max_std_inf": (["algo.max_std=inf"], ["algo.max_std must be a finite number"]),
    "entropy_coef_inf": (["algo.entropy_coef=inf"], ["algo.entropy_coef must be a finite"]),
    "entropy_schedule_unknown": (["algo.entropy_schedule=cosine"],
                                 ["algo.entropy_schedule must be constant or linear", "cosine"]),
    "start_method_unknown": (["executor=process", "executor.start_method=thread"],
                             ["executor.start_method must be one of auto, fork, spawn, forkserver"]),
    "stop_timeout_inf": (["executor.stop_timeout_s=inf"],
                         ["executor.stop_timeout_s must be a finite number"]),
    "train_log_every_inf": (["logger.train_log_every_s=inf"],
                            ["logger.train_log_every_s must be a finite number"]),
    "seed_too_large": (["seed=99999999999999999999"], ["seed must be in [0, 4294967295]"]),
    "env_module_raises": (["env.id=raising_env_module:Broken-v0"],
                          ["cannot import module 'raising_env_module'",
                           "RuntimeError: this module is broken"]),
    "project_with_slash": (["logger.project=team/rlplug"],
                           ["logger.project must be 1 to 128 characters", "W&B's rule"]),
    "project_with_hash": (['logger.project="rl#plug"'], ["logger.project must be", "'rl#plug'"]),
    "project_too_long": ([f"logger.project={'p' * 129}"], ["logger.project must be 1 to 128"]),
    "tag_too_long": ([f"logger.tags=[baseline,{'t' * 65}]"],
                     ["logger.tags must each be 1 to 64 characters"]),
    "unknown_launcher": (["hydra/launcher=jobliib"],
                         ["unknown hydra/launcher 'jobliib'", "Did you mean 'joblib'?"]),
    "unknown_hydra_key": (["hydra.rn.dir=somewhere"], ["unknown key 'hydra.rn'",
                                                       "Did you mean 'hydra.run'?"]),
    "env_kwargs_without_plus": (["env.kwargs={{sutton_barto_reward:true}}"],
                                ["+env.kwargs.sutton_barto_reward=..."]),
    "run_dir_under_proc": (["hydra.run.dir=/proc/rlplug-run"],
                           ["cannot write the output directory /proc/rlplug-run"]),
    "run_dir_below_a_file": (["hydra.run.dir={tmp}/a_file/run"],
                             ["{tmp}/a_file is not a directory", "hydra.run.dir"]),
    "sweep_dir_under_proc": (["-m", "seed=0,1", "hydra.sweep.dir=/proc/rlplug-sweep"],
                             ["cannot write the output directory /proc/rlplug-sweep",
                              "hydra.sweep.dir"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_value_is_one_line_before_anything_starts(case, run_rlplug, one_line_error,
                                                      tmp_path):
    overrides, fragments = CASES[case]
    (tmp_path / "a_file").write_text("a file where a directory should be\n")
    (tmp_path / "raising_env_module.py").write_text(
        'raise RuntimeError("this module is broken")\n')
    run_dir = tmp_path / "run"
    args = [o.format(tmp=tmp_path) for o in overrides]
    if not any(a.startswith("hydra.run.dir") for a in args):
        args.append(f"hydra.run.dir={run_dir}")

    line = one_line_error(run_rlplug(*QUIET, "total_steps=200", *args, pythonpath=(tmp_path,)))

    for fragment in fragments:
        assert fragment.format(tmp=tmp_path) in line, line
    assert not run_dir.exists() and not (tmp_path / "outputs").exists()
    assert not (tmp_path / "multirun").exists()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    install_search_path()
    with initialize_config_module(config_module="rlplug.conf", version_base="1.3"):
        cfg = compose("config", overrides=[*QUIET, "total_steps=200"])
    assert train(to_run_config(cfg), run_dir).status == "completed"
    return run_dir


@pytest.mark.parametrize("override,fragment", [
    ("env.normalize_obs=true", "trained with env.normalize_obs=False but this run has "
                               "env.normalize_obs=True"),
    ("+env.kwargs.sutton_barto_reward=true", "trained with env.kwargs={} but this run has "
                                             "env.kwargs={'sutton_barto_reward': True}"),
], ids=["normalize_obs", "env_kwargs"])
def test_resume_with_other_env_settings_is_refused(override, fragment, trained_run, run_rlplug,
                                                   one_line_error, tmp_path):
    run_dir = tmp_path / "resumed"
    line = one_line_error(run_rlplug(*QUIET, f"resume={trained_run}", "total_steps=400", override,
                                     f"hydra.run.dir={run_dir}"))
    assert fragment in line
    assert not run_dir.exists()
