"""Checkpoints: written atomically, read back with checks that give one-line errors."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from rlplug.errors import UserError

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` via a temporary file and a rename, so a crash mid-write never
    leaves a truncated checkpoint behind (the previous one stays intact)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        _chmod_like_new_file(fd)
        with os.fdopen(fd, "wb") as f:
            torch.save({"format_version": FORMAT_VERSION, **payload}, f)
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


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint (file or run directory); :class:`UserError` if missing or corrupt."""
    path = resolve_checkpoint(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise UserError(f"checkpoint {path} is corrupt or unreadable ({type(exc).__name__}); "
                        f"use another run's checkpoint") from exc
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION \
            or "algorithm" not in payload or "config" not in payload:
        raise UserError(f"{path} is not an rlplug checkpoint (format {FORMAT_VERSION}); "
                        f"use a checkpoint.pt written by rlplug")
    return payload


def check_compatible(saved_cfg: dict[str, Any], cfg: dict[str, Any], path: str | Path) -> None:
    """The saved run and the new config must agree on what shapes the model: env and network."""
    for section, keys in (("env", ("id", "obs_indices")), ("network", None), ("algo", ("name",))):
        saved, new = saved_cfg.get(section, {}), cfg.get(section, {})
        # "name" first: another network type differs in every key, and its name says it best
        for key in keys or sorted(set(saved) | set(new), key=lambda k: (k != "name", k)):
            if saved.get(key) != new.get(key):
                raise UserError(
                    f"checkpoint {path} was trained with {section}.{key}={saved.get(key)!r} but "
                    f"this run has {section}.{key}={new.get(key)!r}; use the same {section} "
                    f"settings")
