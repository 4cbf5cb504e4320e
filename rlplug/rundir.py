"""A run directory belongs to one run at a time.

* **Lock.** While a run owns its directory (from build to the last output), it holds an exclusive
  ``fcntl.flock`` on ``<run dir>/.rlplug.lock``. The kernel drops the lock when the process ends,
  however it ends (SIGKILL, out of memory), so a crash never leaves a stale lock behind. A second
  run or resume into a locked directory is refused with one line. A run that continues another
  (``resume=<dir>``) also locks that source directory: two concurrent resumes of one run would
  record the same episodes twice and log two W&B runs under one id.
* **No mixing.** A fresh run into a directory that already holds another run's outputs
  (metrics.jsonl, checkpoint.pt, summary.json) is refused, naming ``resume=``: it would append to
  the old metrics and overwrite the old checkpoint.
* **Unique default names.** Hydra's ``outputs/<date>/<time>`` names collide for two runs started in
  the same second; ``conf/config.yaml`` appends ``${rlplug_uid:}``, a short random suffix
  (:func:`register_resolvers`).
* **Writable.** :func:`check_writable` turns an output directory that cannot be created or written
  (a read-only file system, a file in the way) into one line, before Hydra tries and fails with a
  traceback.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from rlplug.errors import UserError

LOCK_NAME = ".rlplug.lock"
# What a run leaves that a second, unrelated run would append to or overwrite.
RUN_OUTPUTS = ("metrics.jsonl", "checkpoint.pt", "checkpoint_best.pt", "summary.json")
UID_RESOLVER = "rlplug_uid"
_LOCK_ATTEMPTS = 10

_held: dict[Path, int] = {}  # run directories this process has locked -> the lock file's fd


def register_resolvers() -> None:
    """``${rlplug_uid:}``: 6 random hex digits, the same for every use within one composed config
    (Hydra copies the resolver cache into each job of a sweep, as it does for ``${now:...}``)."""
    if not OmegaConf.has_resolver(UID_RESOLVER):
        OmegaConf.register_new_resolver(UID_RESOLVER, lambda: secrets.token_hex(3),
                                        use_cache=True)


def _key(path: Path) -> Path:
    return Path(os.path.abspath(path.expanduser()))


def resume_source_dir(resume: str | os.PathLike[str] | None) -> Path | None:
    """The run directory ``resume=`` names (a run directory, or a checkpoint file inside one)."""
    if resume is None:
        return None
    source = _key(Path(resume))
    return source.parent if source.is_file() or source.suffix == ".pt" else source


def _owner(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "another process"


def is_locked(run_dir: Path) -> str | None:
    """Who holds ``run_dir``'s lock (``pid N on host``), or None if nobody does."""
    run_dir = _key(run_dir)
    if run_dir in _held:
        return f"pid {os.getpid()} (this process)"
    try:
        fd = os.open(run_dir / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _owner(fd)
    except OSError:
        return None
    finally:
        os.close(fd)  # also drops the shared lock taken just to look
    return None


def lock(run_dir: Path, *, what: str = "run directory") -> bool:
    """Take ``run_dir``'s lock for this process; :class:`UserError` if another process holds it.
    Returns False if this process already held it (then it is not released twice)."""
    run_dir = _key(run_dir)
    if run_dir in _held:
        return False
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        for attempt in range(_LOCK_ATTEMPTS):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == _LOCK_ATTEMPTS - 1:
                    raise
                time.sleep(0.05)  # someone may only be looking (is_locked holds it for an instant)
    except BlockingIOError:
        owner = _owner(fd)
        os.close(fd)
        raise UserError(f"{what} {run_dir} is in use by another rlplug run ({owner}); wait for "
                        f"it to end, or choose another directory (hydra.run.dir=...)") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    _held[run_dir] = fd
    return True


def unlock(run_dir: Path) -> None:
    fd = _held.pop(_key(run_dir), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the flock


def holds(run_dir: Path) -> bool:
    """True if this process holds ``run_dir``'s lock."""
    return _key(run_dir) in _held


def foreign_outputs(run_dir: Path, resume: str | None) -> list[str]:
    """Outputs of another run in ``run_dir`` (none when ``resume=`` continues this very
    directory: a resume in place)."""
    if resume_source_dir(resume) == _key(run_dir):
        return []
    return [name for name in RUN_OUTPUTS if (run_dir / name).exists()]


def check_fresh(run_dir: Path, resume: str | None) -> None:
    """Refuse a run into a directory that holds another run's outputs (one line naming
    ``resume=``), or that another run has locked."""
    run_dir = _key(run_dir)
    owner = None if holds(run_dir) else is_locked(run_dir)
    if owner is not None:
        raise UserError(f"run directory {run_dir} is in use by another rlplug run ({owner}); "
                        f"wait for it to end, or choose another directory (hydra.run.dir=...)")
    found = foreign_outputs(run_dir, resume)
    if found:
        raise UserError(f"run directory {run_dir} already holds another run's outputs "
                        f"({', '.join(found)}); continue that run with resume={run_dir} "
                        f"hydra.run.dir={run_dir}, or choose a new directory (hydra.run.dir=...)")
    source = resume_source_dir(resume)
    if source is not None and source != run_dir and not holds(source):
        owner = is_locked(source)
        if owner is not None:
            raise UserError(f"the run in {source} is in use by another rlplug run ({owner}); "
                            f"resume it once that run has ended")


def check_writable(path: Path, key: str) -> None:
    """One line, naming ``key``, if ``path`` cannot be created or written: its nearest existing
    ancestor must be a writable directory (tried for real with a temporary directory)."""
    path = _key(Path(path))
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"cannot create the output directory {path}: {existing} is not a "
                        f"directory; set {key} to a writable directory")
    try:
        probe = tempfile.mkdtemp(prefix=".rlplug-write-test-", dir=existing)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        if exc.errno == errno.ENOENT:
            reason = "cannot create directories there"
        raise UserError(f"cannot write the output directory {path} ({existing}: {reason}); set "
                        f"{key} to a writable directory") from None
    os.rmdir(probe)


@contextmanager
def claim(run_dir: Path, resume: str | None) -> Iterator[None]:
    """Own ``run_dir`` (created if needed) for the duration: lock it and the resume source,
    refuse another run's outputs. One-line :class:`UserError` otherwise."""
    run_dir = _key(Path(run_dir))
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the run directory {run_dir}: "
                        f"{os.strerror(exc.errno) if exc.errno else exc}; choose a writable "
                        f"directory (hydra.run.dir=...)") from None
    taken: list[Path] = []
    try:
        try:
            if lock(run_dir):
                taken.append(run_dir)
        except OSError as exc:
            raise UserError(f"cannot write into the run directory {run_dir}: "
                            f"{os.strerror(exc.errno) if exc.errno else exc}; choose a writable "
                            f"directory (hydra.run.dir=...)") from None
        check_fresh(run_dir, resume)
        source = resume_source_dir(resume)
        if source is not None and source.is_dir():
            try:
                if lock(source, what="the run in"):
                    taken.append(source)
            except PermissionError:
                pass  # a read-only archive of a run: nothing can write to it concurrently either
            except OSError as exc:
                if exc.errno != errno.EROFS:
                    raise
        yield
    finally:
        for path in taken:
            unlock(path)


def write_interrupted_summary(run_dir: Path, note: str, extra: dict[str, Any] | None = None
                              ) -> bool:
    """After Ctrl-C (or SIGTERM) before training started: leave a summary.json with status
    ``interrupted`` in ``run_dir``, unless it already has one (e.g. a resume in place keeps the
    summary that describes its checkpoint) or another process owns the directory. Returns True
    if written."""
    run_dir = _key(Path(run_dir))
    summary_path = run_dir / "summary.json"
    if not run_dir.is_dir() or summary_path.exists():
        return False
    if not holds(run_dir) and is_locked(run_dir) is not None:
        return False
    summary = {"status": "interrupted", "env_steps": 0, "episodes": 0, "wall_s": 0.0,
               "steps_per_s": 0.0, "return_mean100_final": None, "return_mean100_best": None,
               "error": None, "note": note, **(extra or {})}
    tmp = summary_path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
        tmp.replace(summary_path)
    except OSError:
        return False
    return True
