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
        with os.fdopen(fd, "wb") as f:
            torch.save({"format_version": FORMAT_VERSION, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    """Read a checkpoint (file or run directory); raises :class:`UserError` if missing or corrupt."""
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
        for key in keys or sorted(set(saved) | set(new)):
            if saved.get(key) != new.get(key):
                raise UserError(
                    f"checkpoint {path} was trained with {section}.{key}={saved.get(key)!r} but this "
                    f"run has {section}.{key}={new.get(key)!r}; use the same {section} settings")
