"""Continuing a run from its checkpoint: its config, checks (one-line errors) and restoring the
state.

``resume=<run dir>`` alone continues the run with the config stored in its checkpoint
(:func:`job_config`); keys set on the command line beside it apply where the saved model and
optimizer still fit them (budget, logging, checkpoints, executor, the algorithm's settings...).
Those that change what the model is or sees (the env's id, arguments and observations, the
network, the algorithm's kind) get a one-line error naming the key.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlplug.build import config_dict
from rlplug.checkpoint import check_compatible, load_checkpoint, set_rng_state
from rlplug.config import RunConfig, to_run_config
from rlplug.contracts import Algorithm
from rlplug.errors import UserError
from rlplug.outputs import METRICS_NAME, read_metrics
from rlplug.schemas import run_config_from_dict

_MISSING = object()


def job_config(cfg: DictConfig, overrides: Sequence[str]) -> RunConfig:
    """The config a job runs with. Without ``resume`` it is the composed ``cfg``. With it, it is
    the config saved in the checkpoint, with the values of the keys the command line set
    (``overrides``, e.g. Hydra's ``HydraConfig.get().overrides.task``) taken from ``cfg``; a
    group choice (``executor=thread``) replaces that whole section. :class:`UserError` (one line)
    for an override the saved run cannot take."""
    run = to_run_config(cfg)  # the command line's own values are checked as usual
    if not run.resume:
        return run
    source = Path(run.resume).expanduser()
    saved = load_checkpoint(source, run=True)["config"]
    composed = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(composed, dict)
    merged = copy.deepcopy(saved)
    for key, line in _explicit_keys(overrides):
        value = _get(composed, key)
        if value is _MISSING:  # e.g. experiment=..., a preset of keys all over the config
            raise UserError(f"{line} cannot be combined with resume=: the resumed run keeps the "
                            f"config saved in {source}; set single keys instead, e.g. "
                            f"total_steps=...")
        _set(merged, key, copy.deepcopy(value))
    merged["resume"] = run.resume
    check_compatible(saved, merged, source)
    try:
        return run_config_from_dict(merged)
    except UserError:
        raise
    except (OmegaConfBaseException, ValueError) as exc:
        key = getattr(exc, "full_key", None)
        first = (str(getattr(exc, "msg", exc)).strip().splitlines() or [""])[0]
        raise UserError(f"{key + ': ' if key else ''}{first}; the run in {source} cannot take "
                        f"this override") from exc


def _explicit_keys(overrides: Sequence[str]) -> list[tuple[str, str]]:
    """(dotted key, override as written) for every command-line override but ``resume``."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as exc:
        raise UserError(f"cannot parse the command line: {exc}".splitlines()[0]) from exc
    keys = []
    for override in parsed:
        key = override.key_or_group.replace("/", ".")
        if key == "resume" or key.startswith("hydra."):
            continue
        if override.is_delete() or override.package is not None:
            raise UserError(f"{override.input_line} cannot be combined with resume=: the "
                            f"resumed run keeps the config saved in its checkpoint; set single "
                            f"keys instead")
        keys.append((key, override.input_line))
    return keys


def _get(tree: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return _MISSING
        tree = tree[part]
    return tree


def _set(tree: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    for part in parents:
        child = tree.get(part)
        if not isinstance(child, dict):
            child = tree[part] = {}
        tree = child
    tree[leaf] = value


def check_resumable(run: RunConfig, algo: Algorithm) -> dict[str, Any]:
    """Load ``run.resume``'s checkpoint into ``algo``; one-line errors if missing, corrupt,
    incompatible with this config, or already past ``total_steps``."""
    assert run.resume is not None
    source = Path(run.resume).expanduser()
    payload = load_checkpoint(source, run=True)
    check_compatible(payload["config"], config_dict(run), source)
    if payload["env_steps"] >= run.total_steps:
        raise UserError(f"the run in {source} already reached {payload['env_steps']} env steps; "
                        f"raise total_steps above it to continue training")
    try:
        algo.load_state_dict(payload["algorithm"])
    except Exception as exc:  # noqa: BLE001 - any mismatch of a hand-made state: one line
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
