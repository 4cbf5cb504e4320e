"""Continuing a run from its checkpoint: checks (one-line errors) and restoring the state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlplug.build import config_dict
from rlplug.checkpoint import check_compatible, load_checkpoint, set_rng_state
from rlplug.config import RunConfig
from rlplug.contracts import Algorithm
from rlplug.errors import UserError
from rlplug.outputs import METRICS_NAME, read_metrics


def check_resumable(run: RunConfig, algo: Algorithm) -> dict[str, Any]:
    """Load ``run.resume``'s checkpoint into ``algo``; one-line errors if missing, corrupt,
    incompatible with this config, or already past ``total_steps``."""
    assert run.resume is not None
    source = Path(run.resume).expanduser()
    payload = load_checkpoint(source)
    check_compatible(payload["config"], config_dict(run), source)
    if payload["env_steps"] >= run.total_steps:
        raise UserError(f"the run in {source} already reached {payload['env_steps']} env steps; "
                        f"raise total_steps above it to continue training")
    try:
        algo.load_state_dict(payload["algorithm"])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise UserError(f"checkpoint in {source} does not fit this model "
                        f"({str(exc).splitlines()[0]}); use the same network settings") from exc
    return payload


def resume(run: RunConfig, algo: Algorithm, run_dir: Path) -> dict[str, Any]:
    """Continue a run: model and optimizer, RNG state, and its metrics (copied into ``run_dir``)."""
    payload = check_resumable(run, algo)
    set_rng_state(payload["rng"])
    assert run.resume is not None
    source = Path(run.resume).expanduser()
    source_dir = source if source.is_dir() else source.parent
    # Rows written after the checkpoint (a run killed between two checkpoints) are dropped: the
    # resumed run records those env steps again.
    rows = [r for r in read_metrics(source_dir / METRICS_NAME)
            if r.get("env_step", 0) <= payload["env_steps"]]
    tmp = run_dir / f".{METRICS_NAME}.tmp"
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(run_dir / METRICS_NAME)
    return payload
