"""Bad input fails before any worker starts: one line on stderr (``rlplug: error: ...``), exit code
2, and no run directory.

Covers what ``test_config_validation.py`` leaves out (it has unknown options, misspelled keys,
wrong types, out-of-range values and unknown env ids): env modules that do not import, spaces
rlplug does not support (test envs in ``rlplug_test_envs``), and missing, corrupt or incompatible
checkpoints for ``resume=`` and ``python -m rlplug.evaluate``.
Most cases call the real entry points in-process (``rlplug.__main__.main``,
``rlplug.evaluate.main``); one goes through a fresh ``python -m rlplug``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from rlplug import __main__ as rlplug_main
from rlplug import evaluate
from rlplug.config import to_run_config
from rlplug.plugins import install_search_path
from rlplug.run import train

TESTS_DIR = Path(__file__).resolve().parent
QUIET = ["logger.mode=disabled", "progress=false"]


@pytest.fixture
def test_envs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put ``rlplug_test_envs`` on sys.path (``env.id=rlplug_test_envs:<Id>`` imports it)."""
    monkeypatch.syspath_prepend(str(TESTS_DIR))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished CartPole run (feed-forward network, 200 env steps) to resume and evaluate."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    install_search_path()
    with initialize_config_module(config_module="rlplug.conf", version_base="1.3"):
        cfg = compose("config", overrides=[*QUIET, "env=cartpole", "executor=thread",
                                           "executor.workers=1", "total_steps=200"])
    result = train(to_run_config(cfg), run_dir)
    assert result.status == "completed"
    return run_dir


@pytest.fixture
def corrupt_run(trained_run: Path, tmp_path: Path) -> Path:
    """A run directory whose checkpoint.pt was cut short (as by a crash without atomic writes)."""
    run_dir = tmp_path / "corrupt"
    run_dir.mkdir()
    data = (trained_run / "checkpoint.pt").read_bytes()
    (run_dir / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    return run_dir


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
            cwd: Path) -> tuple[int, str]:
    """``python -m rlplug <argv>`` in-process; returns the exit code and stderr."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["rlplug", *argv])
    with pytest.raises(SystemExit) as exited:
        rlplug_main.main()
    return exited.value.code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, prog: str, *fragments: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith(f"{prog}: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


CONFIG_CASES = {
    "unimportable_env_module": (["env.id=no_such_module_xyz:Env-v0"],
                                ["cannot import module 'no_such_module_xyz'"]),
    "dict_observations": (["env.id=rlplug_test_envs:DictObs-v0"],
                          ["has Dict observations", "Box observations only"]),
    "tuple_observations": (["env.id=rlplug_test_envs:TupleObs-v0"], ["has Tuple observations"]),
    "multidiscrete_actions": (["env.id=rlplug_test_envs:MultiDiscreteAction-v0"],
                              ["has MultiDiscrete actions", "Discrete and Box actions"]),
    "image_observations_with_mlp": (["env.id=rlplug_test_envs:ImageObs-v0", "network=ff"],
                                    ["network=ff needs flat (1-D) observations", "(16, 16, 3)"]),
    "obs_indices_out_of_range": (["env=cartpole", "env.obs_indices=[0,4]"],
                                 ["env.obs_indices=[0, 4] is out of range", "indices 0..3"]),
    "resume_missing_directory": (["resume={tmp}/no_such_run"], ["no checkpoint at"]),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_command_line_fails_with_one_line_before_any_run_directory(
        case, capsys, monkeypatch, tmp_path, test_envs):
    overrides, fragments = CONFIG_CASES[case]
    run_dir = tmp_path / "run"
    argv = [o.format(tmp=tmp_path) for o in overrides] + [*QUIET, f"hydra.run.dir={run_dir}"]

    code, err = run_cli(argv, capsys, monkeypatch, tmp_path)

    assert_one_line_error(code, err, "rlplug", *fragments)
    assert not run_dir.exists() and not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("overrides,fragments", [
    (["env=pendulum"], ["trained with env.id='CartPole-v1'", "env.id='Pendulum-v1'"]),
    (["network=lstm"], ["trained with network.name='ff'", "network.name='lstm'"]),
    (["network.hidden_sizes=[32]"], ["network.hidden_sizes=[64, 64]", "[32]"]),
    (["total_steps=200"], ["already reached 200 env steps", "raise total_steps"]),
], ids=["other_env", "other_network", "other_layer_sizes", "nothing_left_to_train"])
def test_resume_from_an_incompatible_checkpoint_fails_with_one_line(
        overrides, fragments, trained_run, capsys, monkeypatch, tmp_path):
    run_dir = tmp_path / "run"
    argv = [f"resume={trained_run}", "total_steps=400", *overrides, *QUIET,
            f"hydra.run.dir={run_dir}"]

    code, err = run_cli(argv, capsys, monkeypatch, tmp_path)

    assert_one_line_error(code, err, "rlplug", *fragments)
    assert not run_dir.exists()


def test_resume_from_a_corrupt_checkpoint_fails_with_one_line(corrupt_run, capsys, monkeypatch,
                                                              tmp_path):
    run_dir = tmp_path / "run"
    code, err = run_cli([f"resume={corrupt_run}", "total_steps=400", *QUIET,
                         f"hydra.run.dir={run_dir}"], capsys, monkeypatch, tmp_path)

    assert_one_line_error(code, err, "rlplug", "is corrupt or unreadable")
    assert not run_dir.exists()


@pytest.mark.parametrize("target", ["missing", "corrupt", "not_a_checkpoint"])
def test_evaluate_rejects_a_bad_checkpoint_with_one_line(target, corrupt_run, capsys, tmp_path):
    paths = {"missing": tmp_path / "no_such_run", "corrupt": corrupt_run,
             "not_a_checkpoint": tmp_path / "notes.pt"}
    paths["not_a_checkpoint"].write_text("not a checkpoint\n")
    fragments = {"missing": "no checkpoint at", "corrupt": "is corrupt or unreadable",
                 "not_a_checkpoint": "is not an rlplug checkpoint"}

    with pytest.raises(SystemExit) as exited:
        evaluate.main([str(paths[target]), "episodes=1"])

    assert_one_line_error(exited.value.code, capsys.readouterr().err, "rlplug.evaluate",
                          fragments[target])
    assert not (tmp_path / "eval.json").exists()


def test_fresh_cli_process_reports_unsupported_env_in_one_line(tmp_path):
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]))
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "rlplug", "env.id=rlplug_test_envs:DictObs-v0", *QUIET,
         f"hydra.run.dir={run_dir}"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300)

    assert_one_line_error(proc.returncode, proc.stderr, "rlplug", "has Dict observations")
    assert proc.stdout == ""
    assert not run_dir.exists()
