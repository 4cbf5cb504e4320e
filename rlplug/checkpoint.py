"""Checkpoints: written atomically, read back with checks that give one-line errors.

A checkpoint holds tensors and plain data only (numbers, strings, lists, dicts): it is read with
``torch.load(weights_only=True)``, so a crafted file can never run code when it is loaded.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlplug.errors import UserError

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 2  # 2: tensors and plain data only (loaded with weights_only=True)


def rng_state() -> dict[str, Any]:
    """The main process's torch and numpy RNG states as tensors and plain data."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                      "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)}}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached"]))


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` via a temporary file and a rename, so a crash mid-write never
    leaves a truncated checkpoint behind (the previous one stays intact)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        _chmod_like_new_file(fd)
        # Serialised in memory first: a full disk then fails in f.write with the real OSError
        # (ENOSPC, EFBIG, ...) rather than as torch's opaque "file write failed".
        with os.fdopen(fd, "wb") as f:
            buffer = io.BytesIO()
            torch.save({"format_version": FORMAT_VERSION, **payload}, buffer)
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a process killed mid-write
        stale.unlink(missing_ok=True)


def _chmod_like_new_file(fd: int) -> None:
    """mkstemp makes the file private (0600); give it the permissions open() would."""
    if not hasattr(os, "fchmod"):
        return
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a power cut right after it keeps the new file)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def all_finite(state: Any) -> bool:
    """True if every floating-point tensor in a (nested) state dict is free of NaN and inf."""
    if isinstance(state, torch.Tensor):
        return not state.is_floating_point() or bool(torch.isfinite(state).all())
    if isinstance(state, dict):
        return all(all_finite(v) for v in state.values())
    if isinstance(state, list | tuple):
        return all(all_finite(v) for v in state)
    return True


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, given either the file or a run directory that holds one."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}; pass a run directory that contains "
                        f"{CHECKPOINT_NAME} or the path of a checkpoint file")
    return path


def load_checkpoint(path: str | Path, *, run: bool = False) -> dict[str, Any]:
    """Read a checkpoint (file or run directory); :class:`UserError` if missing or corrupt.

    Whatever it holds is type-checked; ``run=True`` (resume, evaluate) also requires everything a
    run's checkpoint has: the config with its env id, the counters and the RNG state."""
    path = resolve_checkpoint(path)
    try:
        # weights_only: tensors and plain containers only; anything else (code) is refused
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols: the
            warnings.simplefilter("ignore")  # refusal below says it in one line instead
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UserError(f"{path} is not an rlplug checkpoint (it holds objects other than "
                        f"tensors and plain data, so it was not loaded); use a checkpoint.pt "
                        f"written by rlplug") from exc
    except Exception as exc:
        raise UserError(f"checkpoint {path} is corrupt or unreadable ({type(exc).__name__}); "
                        f"use another run's checkpoint") from exc
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION \
            or "algorithm" not in payload or "config" not in payload:
        raise UserError(f"{path} is not an rlplug checkpoint (format {FORMAT_VERSION}); "
                        f"use a checkpoint.pt written by rlplug")
    problem = _payload_problem(payload, run)
    if problem:
        raise UserError(f"{path} is not a valid rlplug checkpoint ({problem}); use a "
                        f"checkpoint.pt written by rlplug")
    return payload


_WANDB_ID = re.compile(r"[^\s:;,#?/'][^:;,#?/']{0,126}[^\s:;,#?/']|[^\s:;,#?/']")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _payload_problem(payload: dict[str, Any], run: bool) -> str | None:
    """What makes a (weights-only, so code-free) payload unusable, or None. Checked here so that a
    hand-made or damaged file gets one line instead of a KeyError deep inside a resume."""
    if not isinstance(payload["algorithm"], dict):
        return "'algorithm' is not a state dict"
    config = payload["config"]
    if not isinstance(config, dict):
        return "'config' is not a mapping"
    for section in ("env", "network", "algo", "executor", "logger"):
        if not isinstance(config.get(section, {}), dict):
            return f"config.{section} is not a mapping"
    if run:
        missing = [key for key in ("env_steps", "episodes", "rng") if key not in payload]
        if missing or not isinstance(config.get("env", {}).get("id"), str):
            return f"{', '.join(missing) or 'config.env.id'} missing"
    for key in ("env_steps", "episodes"):
        if key in payload and not _is_count(payload[key]):
            return f"'{key}' is not a non-negative integer"
    wall_s = payload.get("wall_s", 0.0)
    if isinstance(wall_s, bool) or not isinstance(wall_s, int | float) \
            or not math.isfinite(wall_s) or wall_s < 0:
        return "'wall_s' is not a non-negative number"
    run_id = payload.get("wandb_run_id")
    if run_id is not None and not (isinstance(run_id, str) and _WANDB_ID.fullmatch(run_id)):
        return "'wandb_run_id' is not a W&B run id"
    if "rng" in payload and not _rng_ok(payload["rng"]):
        return "'rng' is not an RNG state"
    return None


def _rng_ok(state: Any) -> bool:
    """The shape :func:`rng_state` writes (so :func:`set_rng_state` cannot fail on it)."""
    if not isinstance(state, dict) or not isinstance(state.get("torch"), torch.Tensor) \
            or state["torch"].dtype != torch.uint8 \
            or state["torch"].shape != torch.get_rng_state().shape \
            or not isinstance(state.get("numpy"), dict):
        return False
    numpy = state["numpy"]
    keys = numpy.get("keys")
    return (numpy.get("kind") == "MT19937" and isinstance(keys, torch.Tensor)
            and keys.dtype == torch.int64 and tuple(keys.shape) == (624,)
            and bool(((keys >= 0) & (keys < 2**32)).all())
            and isinstance(numpy.get("pos"), int) and 0 <= numpy["pos"] <= 624
            and isinstance(numpy.get("has_gauss"), int)
            and isinstance(numpy.get("cached"), float))


def check_compatible(saved_cfg: dict[str, Any], cfg: dict[str, Any], path: str | Path) -> None:
    """The saved run and the new config must agree on what shapes the model and what it sees:
    the env (id, its arguments, observation selection and scaling), the network and the
    algorithm's kind."""
    env_keys = ("id", "kwargs", "obs_indices", "normalize_obs")
    for section, keys in (("env", env_keys), ("network", None), ("algo", ("name",))):
        saved, new = saved_cfg.get(section, {}), cfg.get(section, {})
        # "name" first: another network type differs in every key, and its name says it best
        for key in keys or sorted(set(saved) | set(new), key=lambda k: (k != "name", k)):
            if saved.get(key) != new.get(key):
                raise UserError(
                    f"checkpoint {path} was trained with {section}.{key}={saved.get(key)!r} but "
                    f"this run has {section}.{key}={new.get(key)!r}; use the same {section} "
                    f"settings")
