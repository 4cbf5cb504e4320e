"""Files from someone else cannot run code or crash rlplug with a traceback.

* A crafted checkpoint (a pickle whose ``__reduce__`` would write a file) given to ``resume=``
  through ``python -m rlplug`` and to ``python -m rlplug.evaluate``: one line, exit code 2,
  nothing written (checkpoints are read with ``torch.load(weights_only=True)``).
* Code-free checkpoints (tensors and plain data) with the wrong shape: one line, exit 2.
* A damaged metrics.jsonl in the run to resume, and damaged summary.json / overrides.yaml in a
  sweep to report: the bad rows and files are skipped, the rest goes on.
* ``--experimental-rerun`` (Hydra unpickles the file given): refused in one line.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_module

from rlplug import __main__ as rlplug_main
from rlplug import evaluate
from rlplug.checkpoint import load_checkpoint, save_checkpoint
from rlplug.config import to_run_config
from rlplug.outputs import read_metrics
from rlplug.plugins import install_search_path
from rlplug.report import write_report
from rlplug.run import train

QUIET = ["logger.mode=disabled", "progress=false"]
TINY = ["env=cartpole", "executor=thread", "executor.workers=1", *QUIET]
CLI_TIMEOUT_S = 300


class WriteFileOnLoad:
    """Unpickling this calls ``exec`` with code that writes ``marker``: what an attacker ships."""

    def __init__(self, marker: Path):
        self.code = f"open({str(marker)!r}, 'w').write('code from a checkpoint ran')"

    def __reduce__(self) -> tuple[Any, ...]:
        return exec, (self.code,)


def compose_run(*overrides: str):
    install_search_path()
    with initialize_config_module(config_module="rlplug.conf", version_base="1.3"):
        return to_run_config(compose("config", overrides=[*TINY, *overrides]))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    assert train(compose_run("total_steps=300"), run_dir).status == "completed"
    return run_dir


def craft(kind: str, folder: Path, marker: Path, trained_run: Path) -> Path:
    """A checkpoint.pt in ``folder`` that runs code when unpickled without weights_only."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "checkpoint.pt"
    evil = WriteFileOnLoad(marker)
    if kind == "raw_pickle":
        path.write_bytes(pickle.dumps(evil))
    elif kind == "inside_real_checkpoint":  # torch's zip format, the payload looks genuine
        payload = torch.load(trained_run / "checkpoint.pt", weights_only=True)
        payload["rng"] = evil
        torch.save(payload, path)
    else:  # torch's legacy (non-zip) format
        torch.save({"format_version": 2, "algorithm": evil, "config": {}}, path,
                   _use_new_zipfile_serialization=False)
    return path


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=CLI_TIMEOUT_S)


def assert_one_line(proc: subprocess.CompletedProcess[str], prog: str, *fragments: str) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, f"exit {proc.returncode}:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("kind", ["raw_pickle", "inside_real_checkpoint", "legacy_torch_format"])
def test_crafted_checkpoint_runs_no_code_in_resume_or_evaluate(kind, trained_run, tmp_path):
    marker = tmp_path / "pwned.txt"
    crafted = craft(kind, tmp_path / "crafted", marker, trained_run)
    # the file really is hostile: an ordinary unpickling runs its code
    with open(crafted, "rb") as f:
        torch.load(f, weights_only=False) if kind != "raw_pickle" else pickle.load(f)
    assert marker.exists()
    marker.unlink()

    run_dir = tmp_path / "resumed"
    proc = cli("rlplug", f"resume={crafted.parent}", *TINY, "total_steps=600",
               f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert_one_line(proc, "rlplug", f"{crafted} is not an rlplug checkpoint")
    assert not marker.exists() and not run_dir.exists()

    proc = cli("rlplug.evaluate", str(crafted), "episodes=1", cwd=tmp_path)
    assert_one_line(proc, "rlplug.evaluate", "is not an rlplug checkpoint")
    assert not marker.exists() and not (crafted.parent / "eval.json").exists()


def mutate(payload: dict[str, Any], case: str) -> None:
    if case == "config_not_a_mapping":
        payload["config"] = "CartPole-v1"
    elif case == "env_steps_not_a_count":
        payload["env_steps"] = "many"
    elif case == "rng_wrong_size":
        payload["rng"]["torch"] = torch.zeros(7, dtype=torch.uint8)
    elif case == "wandb_id_with_a_slash":
        payload["wandb_run_id"] = "../../elsewhere"
    elif case == "model_state_not_tensors":
        payload["algorithm"] = {"model": 3}
    elif case == "env_kwargs_not_a_mapping":
        payload["config"]["env"]["kwargs"] = 5


STRUCTURE_CASES = {  # case: (fragment for resume=, fragment for evaluate)
    "config_not_a_mapping": ("'config' is not a mapping", "'config' is not a mapping"),
    "env_steps_not_a_count": ("'env_steps' is not a non-negative integer",) * 2,
    "rng_wrong_size": ("'rng' is not an RNG state",) * 2,
    "wandb_id_with_a_slash": ("'wandb_run_id' is not a W&B run id",) * 2,
    "model_state_not_tensors": ("does not fit this model", "does not match its own config"),
    "env_kwargs_not_a_mapping": ("trained with env.kwargs=5", "holds a config rlplug cannot use"),
}


def run_main(argv: list[str], capsys, monkeypatch, cwd: Path) -> tuple[int, str]:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["rlplug", *argv])
    with pytest.raises(SystemExit) as exited:
        rlplug_main.main()
    return exited.value.code, capsys.readouterr().err


@pytest.mark.parametrize("case", sorted(STRUCTURE_CASES))
def test_checkpoint_of_the_wrong_shape_is_one_line_for_resume_and_evaluate(
        case, trained_run, tmp_path, capsys, monkeypatch):
    payload = load_checkpoint(trained_run)
    mutate(payload, case)
    folder = tmp_path / "damaged"
    save_checkpoint(folder / "checkpoint.pt", {k: v for k, v in payload.items()
                                               if k != "format_version"})
    resume_fragment, evaluate_fragment = STRUCTURE_CASES[case]

    run_dir = tmp_path / "resumed"
    code, err = run_main([f"resume={folder}", *TINY, "total_steps=600",
                          f"hydra.run.dir={run_dir}"], capsys, monkeypatch, tmp_path)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("rlplug: error: "), err
    assert resume_fragment in lines[0]
    assert not run_dir.exists()

    with pytest.raises(SystemExit) as exited:
        evaluate.main([str(folder / "checkpoint.pt"), "episodes=1"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("rlplug.evaluate: error: ") and evaluate_fragment in lines[0]


GARBAGE_ROWS = ['[1, 2, 3]', '"just a string"', '{"kind": "episode", "env_step": 5}',
                '{"kind": "episode", "env_step": 5, "return": "lots", "length": 3}',
                '{"kind": "train", "env_step": "five"}', '{"kind": "episode", "env_step": 7, '
                '"return": 1.0, "length": [1]}', '\u0000\u00ff not json at all']


def test_resume_skips_damaged_metrics_rows(trained_run, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "checkpoint.pt").write_bytes((trained_run / "checkpoint.pt").read_bytes())
    good = (trained_run / "metrics.jsonl").read_text().splitlines()
    mixed = [good[0], *GARBAGE_ROWS, *good[1:]]
    (source / "metrics.jsonl").write_text("\n".join(mixed) + "\n", encoding="utf-8")

    run_dir = tmp_path / "resumed"
    result = train(compose_run("total_steps=600", f"resume={source}"), run_dir)

    assert result.status == "completed", result.error
    rows = read_metrics(run_dir / "metrics.jsonl")
    assert rows[:len(good)] == [json.loads(line) for line in good]
    assert all(isinstance(r, dict) for r in rows)


def test_report_skips_damaged_summaries_and_overrides(trained_run, tmp_path):
    sweep = tmp_path / "sweep"
    for job, seed in (("0_seed=0", 0), ("1_seed=1", 1), ("2_bad", 2), ("3_odd", 3)):
        folder = sweep / job
        (folder / ".hydra").mkdir(parents=True)
        summary = json.loads((trained_run / "summary.json").read_text())
        summary["seed"] = seed
        (folder / "summary.json").write_text(json.dumps(summary))
        (folder / ".hydra" / "overrides.yaml").write_text(f"- seed={seed}\n")
        (folder / "metrics.jsonl").write_text((trained_run / "metrics.jsonl").read_text())
    (sweep / "2_bad" / "summary.json").write_text('["not", "a", "summary"]')
    odd = json.loads((sweep / "3_odd" / "summary.json").read_text())
    odd.update(seed="three", env_steps="many", return_mean100_final="high", status=7)
    (sweep / "3_odd" / "summary.json").write_text(json.dumps(odd))
    (sweep / "3_odd" / ".hydra" / "overrides.yaml").write_text(
        "!!python/object/apply:os.system ['touch pwned']\n")
    (sweep / "3_odd" / "metrics.jsonl").write_text("\n".join(GARBAGE_ROWS))

    text, files = write_report(sweep)

    assert "skipped" in text and "2_bad" in text
    assert all(f.exists() for f in files)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_experimental_rerun_of_a_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned.txt"
    pickled = tmp_path / "config.pickle"
    pickled.write_bytes(pickle.dumps(WriteFileOnLoad(marker)))

    proc = cli("rlplug", "--experimental-rerun", str(pickled), cwd=tmp_path)

    assert_one_line(proc, "rlplug", "--experimental-rerun is not supported")
    assert not marker.exists()
