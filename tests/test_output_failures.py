"""A full disk does not cost the other outputs.

The disk fills up for real: once the run trains (its shared-memory model is allocated), the
main process gets a file-size limit (``prlimit(RLIMIT_FSIZE)``, 2 MB) below the size of its
checkpoint (about 6 MB with 512-unit layers), so writing the checkpoint fails with EFBIG ("File
too large"), as it would with ENOSPC on a full disk; metrics.jsonl, the summary, the learning
curve and the W&B files stay below the limit.

* The final checkpoint fails: the run still writes summary.json (status completed, the failed
  write in ``output_errors``), the learning curve and metrics.jsonl, finishes the W&B run, prints
  one line and exits 1.
* A periodic checkpoint fails mid-run: the run stops (status failed, one line, exit 1) and still
  writes every other output.

(Read-only and unwritable output directories: ``tests/test_bad_values.py``.)
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
LIMIT = 2_000_000  # bytes per file
HANG_GUARD_S = 300
RUN = ["env=cartpole", "executor=thread", "executor.workers=1", "logger.mode=offline",
       "progress=false", "total_steps=20000", "eval.every_steps=0",
       "network.hidden_sizes=[512,512]"]


def run_with_a_full_disk(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen([sys.executable, "-m", "rlplug", *RUN, *overrides,
                             f"hydra.run.dir={run_dir}"], cwd=run_dir.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + HANG_GUARD_S
    while not (metrics.exists() and metrics.stat().st_size > 0):  # training has started
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.01)
    resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (LIMIT, LIMIT))
    out, err = proc.communicate(timeout=HANG_GUARD_S)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def message_lines(stderr: str) -> list[str]:
    """stderr without the log records (``[time][logger][LEVEL] - ...``)."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("[")]


@pytest.fixture
def wandb_records(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    import wandb_records

    return wandb_records


@pytest.mark.parametrize("checkpoint_every,status,line", [
    (0, "completed", "rlplug: error: could not write the final checkpoint: OSError: "
                     "[Errno 27] File too large"),
    (2000, "failed", "rlplug: run failed: OSError: [Errno 27] File too large"),
], ids=["final-checkpoint", "periodic-checkpoint"])
def test_full_disk_at_a_checkpoint_costs_no_other_output(checkpoint_every, status, line, tmp_path,
                                                         wandb_records):
    run_dir = tmp_path / "run"
    proc = run_with_a_full_disk(run_dir, f"checkpoint.every_steps={checkpoint_every}")

    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert message_lines(proc.stderr) == [line]
    assert not (run_dir / "checkpoint.pt").exists()  # it never fitted
    assert not list(run_dir.glob(".checkpoint.pt.*.tmp"))  # nor did half of it stay
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == status and summary["env_steps"] > 0
    if status == "completed":
        assert summary["env_steps"] == 20000
        assert summary["output_errors"] == [line.removeprefix("rlplug: error: ")]
    else:
        assert "File too large" in summary["error"]
    rows = [json.loads(r) for r in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any(r["kind"] == "episode" for r in rows)
    assert (run_dir / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    (wandb_file,) = wandb_records.run_files(run_dir)
    wandb_run = wandb_records.read_run(wandb_file)
    assert wandb_run.exit_code == 1
    assert wandb_run.summary["status"] == status
    assert wandb_run.summary["env_steps"] == summary["env_steps"]
