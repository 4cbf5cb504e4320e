"""Locks that a killed holder cannot orphan, for state shared by worker threads and processes.

A ``multiprocessing.Lock`` is a POSIX semaphore: a process killed between ``acquire`` and
``release`` (SIGKILL, the OOM killer, a watchdog) leaves it taken for ever, and every other process
that needs it blocks for ever with it. :class:`RobustLock` is released by the kernel instead:

* between processes it is an exclusive ``flock(2)`` on a small lock file. A flock belongs to an
  open file description, and the kernel drops it when the last descriptor of that description is
  closed -- which includes the death of the holding process, however it dies. Each process opens
  the file itself (after unpickling, on first use), so every process has its own description and
  they exclude each other;
* between the threads of one process it is a ``threading.Lock`` taken first (flock does not
  exclude two threads that share one descriptor). A thread cannot be killed, so this part cannot be
  orphaned.

Correctness: whoever holds the thread lock of a process and then the flock is the only holder in
the machine; a holder that dies releases the flock with its descriptor, and its thread lock dies
with its process. A process forked while holding the lock must not keep the description alive (its
child would hold the flock after the parent's death): after ``fork()`` the child closes its
inherited descriptor and gets a fresh thread lock (:func:`os.register_at_fork`). Descriptors are
opened with ``O_CLOEXEC``, so programs started with ``exec`` never inherit them.

What a dead holder leaves is the shared data it was changing, half-changed: the users of the lock
keep their updates consistent under a kill at any point (see :mod:`rlplug.counters`), or accept a
torn update (one optimizer step, see ``rlplug_a3c.shared_optim``).

Cost: two ``flock`` system calls per acquire/release pair (about a microsecond each when
uncontended). The lock file (empty) is created in the temporary directory (``$TMPDIR``) by the
process that creates the lock and removed when that object is garbage-collected or at interpreter
exit. If that process is killed with SIGKILL, its empty ``rlplug-<host>-<pid namespace>-<pid>-*.lock``
files stay in the temporary directory until the next lock is created there by the same host and
pid namespace: then the files of creators that are no longer alive, and that no process holds, are
removed.
"""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
import threading
import time
import weakref
from multiprocessing.util import Finalize
from typing import Any

_LIVE: weakref.WeakSet[RobustLock] = weakref.WeakSet()
_POLL_S = 0.001  # how often a timed acquire retries the flock
_flock, _LOCK, _UNLOCK = fcntl.flock, fcntl.LOCK_EX, fcntl.LOCK_UN


class _Descriptor:
    """This process's descriptor of a lock file (closed with the lock, or after a fork)."""

    def __init__(self, fd: int | None = None) -> None:
        self.fd = fd

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


def _remove(path: str, descriptor: _Descriptor, creator: int) -> None:
    descriptor.close()
    if os.getpid() == creator:  # not a forked copy of the creator
        try:
            os.unlink(path)
        except OSError:
            pass


def _namespace() -> str:
    """Where a pid means this process's neighbours: the host and (Linux) the pid namespace, so
    that a shared temporary directory never makes another machine's or container's live run look
    dead."""
    host = socket.gethostname().replace("-", "_").replace(os.sep, "_") or "host"
    try:
        pidns = os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        pidns = "0"
    return f"rlplug-{host}-{pidns}-"


def _remove_stale_files(directory: str, prefix: str) -> None:
    """Remove lock files left by creators of this namespace that were killed (their pid is gone)
    and that no process holds. A survivor that still uses such a file keeps its descriptor (the
    same inode); one that has not opened it yet finds it gone and stops."""
    try:
        names = [n for n in os.listdir(directory) if n.startswith(prefix) and n.endswith(".lock")]
    except OSError:
        return
    for name in names:
        pid = name[len(prefix):].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        path = os.path.join(directory, name)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody holds it
            os.unlink(path)
        except OSError:
            pass
        finally:
            os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class RobustLock:
    """A mutual-exclusion lock for threads and processes (any start method) that the death of its
    holder releases. Use it as a context manager or with :meth:`acquire`/:meth:`release`; it is
    not reentrant. Pickle it to hand it to another process."""

    def __init__(self) -> None:
        prefix = _namespace()
        _remove_stale_files(tempfile.gettempdir(), prefix)
        fd, self.path = tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}-", suffix=".lock")
        self._setup(_Descriptor(fd))  # mkstemp opens with O_CLOEXEC
        # Removed when this object is collected, at interpreter exit, and at the exit of a
        # multiprocessing child that created it (which skips atexit): a multiprocessing Finalize.
        self._finalizer = Finalize(self, _remove, (self.path, self._descriptor, os.getpid()),
                                   exitpriority=0)

    def _setup(self, descriptor: _Descriptor) -> None:
        self._descriptor = descriptor
        self._thread_lock = threading.Lock()
        _LIVE.add(self)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = state["path"]
        self._setup(_Descriptor())
        self._finalizer = Finalize(self, self._descriptor.close)

    def _fd(self) -> int:
        if self._descriptor.fd is None:
            try:
                # No O_CREAT: a missing file means the run that owns the lock has ended; creating a
                # new file would give this process a lock nobody else shares.
                self._descriptor.fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                raise RuntimeError(f"lock file {self.path} is gone: the run that created it has "
                                   f"ended") from None
        return self._descriptor.fd

    def acquire(self, timeout: float | None = None) -> bool:
        """Take the lock, waiting at most ``timeout`` seconds (None: as long as it takes);
        returns whether it was taken."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._thread_lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            return False
        try:
            fd = self._fd()
            if deadline is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
                return True
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        self._thread_lock.release()
                        return False
                    time.sleep(_POLL_S)
        except BaseException:
            self._thread_lock.release()
            raise

    def release(self) -> None:
        try:
            _flock(self._descriptor.fd, _UNLOCK)  # open: this process holds the lock
        finally:
            self._thread_lock.release()

    def __enter__(self) -> RobustLock:
        # acquire() without a timeout, inlined: the optimizer and the counters take this lock a
        # few times per update.
        self._thread_lock.acquire()
        try:
            fd = self._descriptor.fd
            _flock(self._fd() if fd is None else fd, _LOCK)
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _after_fork_in_child() -> None:
    # The child must not keep its parent's lock descriptions alive, nor inherit a thread lock
    # that another thread of the parent held at the moment of the fork.
    for lock in list(_LIVE):
        lock._descriptor.close()  # the child opens its own on first use
        lock._thread_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
