"""Evaluation during training, and the policy a run keeps.

Every ``eval.every_steps`` env steps, and once more at the end of a completed run, the main
process evaluates a snapshot of the global model: ``eval.episodes`` whole episodes whose envs are
reset with seeds ``eval.seed``, ``eval.seed + 1``, ... (the same episodes at every evaluation, so
evaluations compare), acting with the policy's mode unless ``eval.deterministic=false``. Each
evaluation is a metrics row ``{"kind": "eval", "env_step", "return_mean", "return_std",
"episodes", ...}``; one that beats the best so far writes its snapshot to ``checkpoint_best.pt``
(atomically, like ``checkpoint.pt``).

The snapshot is the algorithm's ``state_dict()`` (after the session brought the algorithm's own
model up to date with the hosted one, which may be remote), loaded into a second instance of the
algorithm that no worker writes to: the policy evaluated is exactly the policy saved, however
the workers go on updating the global model meanwhile. Evaluating runs in the main process with
one torch thread, between two ticks of the executor's loop: the workers keep acting (their
messages wait in the executor's channel). With an actor that has ``act_batch`` the episodes are
played side by side, one batched forward pass per step, so an evaluation takes little CPU from
the workers (CartPole, 10 episodes of 500 steps: about 0.1 s instead of 0.6 s).

With the same env seeds and episode count, ``python -m rlplug.evaluate <run dir>`` reproduces the
return recorded for the kept policy (deterministic policies).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlplug.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from rlplug.config import EnvConfig, EvalConfig
from rlplug.contracts import Algorithm
from rlplug.errors import UserError
from rlplug.evaluation import EvalResult, evaluate_policy
from rlplug.torch_threads import one_torch_thread

log = logging.getLogger(__name__)

EVAL = "eval"  # the metrics row kind
BEST_CHECKPOINT_NAME = "checkpoint_best.pt"
WHICH = ("best", "latest")


def eval_row(env_step: int, result: EvalResult, cfg: EvalConfig, seconds: float) -> dict[str, Any]:
    return {"kind": EVAL, "env_step": int(env_step), "return_mean": result.mean,
            "return_std": result.std, "episodes": len(result.returns),
            "length_mean": sum(result.lengths) / len(result.lengths),
            "deterministic": cfg.deterministic, "seed": cfg.seed, "eval_s": round(seconds, 3)}


def read_best(path: Path) -> float | None:
    """The evaluation return stored in a checkpoint_best.pt, or None (missing or unreadable)."""
    if not path.is_file():
        return None
    try:
        return float(load_checkpoint(path)["eval"]["return_mean"])
    except (UserError, KeyError, TypeError, ValueError) as exc:
        log.warning("ignoring %s (%s); the next evaluation writes a new one", path, exc)
        return None


class PeriodicEvaluation:
    """Evaluates snapshots of the global model and keeps the best one (see the module docstring).

    ``algo`` is the evaluator's own instance of the run's algorithm (built like the run's, never
    handed to a worker); ``write`` records a metrics row (the monitor's ``on_message``, which
    stamps it with ``wall_s``).
    """

    def __init__(self, cfg: EvalConfig, env_cfg: EnvConfig, algo: Algorithm, run_dir: Path,
                 write: Callable[[dict[str, Any]], None]):
        self.cfg, self.env_cfg, self.algo = cfg, env_cfg, algo
        self.run_dir = Path(run_dir)
        self.write = write
        self.best: float | None = None  # the best evaluation return so far (checkpoint_best.pt)
        self.last: float | None = None  # the latest evaluation's return
        self.last_step: int | None = None

    @property
    def best_path(self) -> Path:
        return self.run_dir / BEST_CHECKPOINT_NAME

    def restore(self, source_dir: Path, rows: list[dict[str, Any]]) -> None:
        """Continue a resumed run's record: its best so far (from its checkpoint_best.pt, copied
        into this run's directory) and its latest evaluation (from its metrics rows)."""
        evals = [r for r in rows if r.get("kind") == EVAL]
        if evals:
            self.last, self.last_step = evals[-1]["return_mean"], evals[-1]["env_step"]
        source = Path(source_dir) / BEST_CHECKPOINT_NAME
        self.best = read_best(source)
        if self.best is not None and source.resolve() != self.best_path.resolve():
            tmp = self.best_path.with_name(f".{BEST_CHECKPOINT_NAME}.resumed.tmp")
            shutil.copyfile(source, tmp)
            tmp.replace(self.best_path)

    def evaluate(self, state: dict[str, Any], env_step: int,
                 payload: Callable[[], dict[str, Any]]) -> EvalResult:
        """Evaluate the policy in ``state`` (an ``Algorithm.state_dict()``), record the row and,
        if it is the best so far, save ``{**payload(), "algorithm": state, "eval": ...}`` as
        checkpoint_best.pt."""
        start = time.monotonic()
        self.algo.load_state_dict(state)
        with one_torch_thread():
            result = evaluate_policy(self.algo, self.env_cfg, self.cfg.episodes, seed=self.cfg.seed,
                                     deterministic=self.cfg.deterministic)
        row = eval_row(env_step, result, self.cfg, time.monotonic() - start)
        self.last, self.last_step = result.mean, int(env_step)
        if self.best is None or result.mean > self.best:
            self.best = result.mean
            row["best"] = True
            save_checkpoint(self.best_path, {**payload(), "algorithm": state, "env_steps": env_step,
                                             "eval": {k: row[k] for k in (
                                                 "return_mean", "return_std", "episodes",
                                                 "deterministic", "seed")}})
        self.write(row)
        return result


def choose_checkpoint(path: str | Path, which: str = "best") -> tuple[Path, str | None]:
    """The checkpoint to use for a run directory (or a checkpoint file, taken as it is):
    ``best`` is checkpoint_best.pt, falling back to checkpoint.pt with a note when the run has
    none (evaluation was off); ``latest`` is checkpoint.pt. Returns (path, note or None)."""
    if which not in WHICH:
        raise UserError(f"which must be best or latest, got {which!r}; set e.g. which=best")
    path = Path(path).expanduser()
    if not path.is_dir():
        return path, None
    best = path / BEST_CHECKPOINT_NAME
    if which == "best":
        if best.is_file():
            return best, None
        return path / CHECKPOINT_NAME, (f"{path} has no {BEST_CHECKPOINT_NAME} (no evaluation "
                                        f"during training: eval.every_steps=0?); using the "
                                        f"latest policy, {CHECKPOINT_NAME}")
    return path / CHECKPOINT_NAME, None
