"""Pickling the worker function and the global model for other machines.

Executors on one machine send these objects to spawned processes, which share the parent's locks
(the shared optimizer's, the counters'). A lock cannot be shared with another machine: a
multiprocessing lock refuses to be pickled outside a spawn, and a
:class:`~rlplug.locks.RobustLock` pickles the path of a lock file that exists only on the machine
that made it. On a Ray node each object has one owner, one process (the hub holds the model, a
worker its own copy of the algorithm), so a lock arrives there as a new lock of that process
alone, with the same interface: a ``threading`` lock, or a :class:`LocalLock` for a RobustLock
(no lock file to leave behind).
"""

from __future__ import annotations

import functools
import io
import multiprocessing.synchronize as mp_sync
import pickle
import threading
from collections import ChainMap
from typing import Any

try:
    from rlplug.locks import RobustLock
except ImportError:  # a core from before rlplug.locks: its locks are multiprocessing's
    RobustLock = None

_THREADING_KINDS = {mp_sync.Lock: "Lock", mp_sync.RLock: "RLock", mp_sync.Semaphore: "Semaphore",
                    mp_sync.BoundedSemaphore: "BoundedSemaphore"}


class LocalLock:
    """A :class:`~rlplug.locks.RobustLock` as it arrives in another machine's process: a lock of
    that process only, with RobustLock's interface."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self, timeout: float | None = None) -> bool:
        return self._lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout))

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> LocalLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def threading_lock(kind: str) -> Any:
    """A new ``threading`` lock of ``kind`` (the same interface as multiprocessing's)."""
    return getattr(threading, kind)()


def _as_threading(kind: str) -> Any:
    return lambda _lock: (threading_lock, (kind,))


_REDUCERS: dict[type, Any] = {cls: _as_threading(kind) for cls, kind in _THREADING_KINDS.items()}
if RobustLock is not None:
    _REDUCERS[RobustLock] = lambda _lock: (LocalLock, ())


@functools.cache
def _pickler() -> type:
    # Ray is imported here, not with this module: the CLI's preflight imports the executor.
    from ray import cloudpickle

    class Pickler(cloudpickle.CloudPickler):
        # A class attribute: the pickler reads its dispatch table when it is constructed.
        dispatch_table = ChainMap(_REDUCERS, cloudpickle.CloudPickler.dispatch_table)

    return Pickler


def dumps(obj: Any) -> bytes:
    """``obj`` pickled for another machine (cloudpickle; locks become new local ones)."""
    buffer = io.BytesIO()
    _pickler()(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buffer.getvalue()


def loads(data: bytes) -> Any:
    """The object :func:`dumps` pickled."""
    return pickle.loads(data)
