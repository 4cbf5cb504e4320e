"""Helpers for executors that run workers as local processes: check that the workers fit before
starting them, start them without losing or misdirecting a Ctrl-C, and make them die with the main
process.

This module imports only the standard library (psutil lazily): a worker process imports it first
(:func:`child_main` is its entry point), so that what it sets up -- dying with its parent, ignoring
the terminal's signals -- is in place before the worker spends seconds importing torch.
"""

from __future__ import annotations

import ctypes
import logging
import os
import resource
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing import resource_tracker
from typing import Any

import psutil

from rlplug.errors import UserError

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# What one worker process costs on top of the main process, measured on Linux with torch 2.x: a
# spawned worker running A3C on Pendulum with the default network, after a minute of training,
# holds 120-160 MB of private memory (USS; RSS 195-255 MB, of which 75-100 MB are shared libraries
# counted once for all processes). Bigger networks, image observations or heavy simulators cost
# more: this is a floor, used to refuse a worker count that cannot fit, not a promise that a
# smaller one will.
WORKER_MEMORY_MB = 200
TIGHT_FRACTION = 0.7  # warn above this share of the available memory
FDS_PER_WORKER = 4  # the message pipe, the process sentinel and spare, in the main process


def check_workers_fit(workers: int, key: str = "executor.workers") -> None:
    """Raise a one-line :class:`~rlplug.errors.UserError` if ``workers`` processes cannot fit in
    the memory available now (psutil) or in the main process's file-descriptor limit (raised to
    its hard limit when needed)."""
    needed_mb = workers * WORKER_MEMORY_MB
    available_mb = available_memory_mb()
    if available_mb is not None and needed_mb > available_mb:
        fit = max(1, int(available_mb // WORKER_MEMORY_MB))
        raise UserError(f"{key}={workers} process workers need about {needed_mb / 1024:.1f} GB "
                        f"(~{WORKER_MEMORY_MB} MB each), only {available_mb / 1024:.1f} GB is "
                        f"available; set e.g. {key}={min(fit, workers - 1)}")
    needed_fds = workers * FDS_PER_WORKER + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and needed_fds > soft:
        if hard == resource.RLIM_INFINITY or needed_fds <= hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed_fds, hard))
        else:
            raise UserError(f"{key}={workers} process workers need about {needed_fds} open files, "
                            f"the limit is {hard} (ulimit -Hn); set e.g. "
                            f"{key}={max(1, (hard - 64) // FDS_PER_WORKER)}")


def warn_if_tight(workers: int) -> None:
    """Log a warning when ``workers`` processes would take most of the available memory."""
    available_mb = available_memory_mb()
    needed_mb = workers * WORKER_MEMORY_MB
    if available_mb is not None and needed_mb > TIGHT_FRACTION * available_mb:
        log.warning("%d process workers need about %.1f GB (~%d MB each) of the %.1f GB available: "
                    "the machine may run out of memory", workers, needed_mb / 1024,
                    WORKER_MEMORY_MB, available_mb / 1024)


def available_memory_mb() -> float | None:
    """Memory available to new processes without swapping (psutil), or None if unknown."""
    return psutil.virtual_memory().available / 2**20


def start_process(process: Any) -> None:
    """``process.start()`` (a multiprocessing process) such that the terminal's SIGINT and a
    SIGTERM to the process group cannot kill the child while it boots.

    SIGINT and SIGTERM are blocked in the calling thread around the start. A child inherits the
    signal mask across ``exec`` (and a forkserver started now passes it on to every child it
    forks), so such a signal stays pending in the child until :class:`ChildSetup` has set it to
    be ignored, which discards it. In this process it stays pending only until the block ends,
    then its handler runs: nothing is lost.

    multiprocessing's resource tracker is started first: CPython unblocks both signals in the
    calling thread when it launches the tracker, which would undo the block.
    """
    if os.name == "posix":
        resource_tracker.ensure_running()
    with _stop_signals_blocked():
        process.start()


@contextmanager
def _stop_signals_blocked() -> Iterator[None]:
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


WORKER_NAME_PREFIX = "rlplug-w"  # worker processes are named rlplug-w0, rlplug-w1, ... (ps, top)


class ChildSetup:
    """The first argument of :func:`child_main`: it makes the child die with its parent, ignore
    SIGINT/SIGTERM and carry the name ``name`` (shown by ``ps``/``top``; at most 15 characters on
    Linux). A spawned child unpickles it before anything heavy is imported, which is when it takes
    effect; a forked child (nothing to unpickle, nothing to import) has it take effect as
    :func:`child_main` begins.

    ``parent_pid`` is the process the child must not outlive; None: the child's parent at start
    (e.g. a forkserver, which itself exits with the main process).
    """

    def __init__(self, parent_pid: int | None, name: str | None = None, *,
                 applied: bool = False) -> None:
        self.parent_pid = parent_pid
        self.name = name
        self.applied = applied

    def __reduce__(self) -> tuple[Any, ...]:
        return _setup_child, (self.parent_pid, os.getpid(), self.name)


def _setup_child(parent_pid: int | None, creator_pid: int | None,
                 name: str | None = None) -> ChildSetup:
    """Runs in the child while its arguments are unpickled, or first thing in a forked child
    (``creator_pid`` None): see :class:`ChildSetup`."""
    if os.getpid() == creator_pid:  # a copy made in the creating process: no side effects
        return ChildSetup(parent_pid, name)
    # The main process decides how the run stops: Ctrl-C reaches the whole process group and
    # SIGTERM may too (a batch scheduler, `docker stop`); the main process then stops the workers
    # through their stop flag and kills those that do not stop in time. Setting SIG_IGN discards a
    # signal that arrived while the parent had it blocked (start_process).
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    expected = os.getppid() if parent_pid is None else parent_pid
    die_with_parent()
    if os.getppid() != expected:  # the parent died before the line above took effect
        os._exit(1)
    if name:
        _name_this_process(name)
    return ChildSetup(expected, name, applied=True)


def _name_this_process(name: str) -> None:
    """Set the name ``ps``/``top`` show for this process (Linux ``PR_SET_NAME``; elsewhere a
    no-op)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_NAME = 15
        libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux ``PR_SET_PDEATHSIG``;
    the "parent" is the thread that started it). Elsewhere a no-op: workers then notice the death
    through ``os.getppid()`` at their next stop check."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def child_main(setup: ChildSetup, main: Callable[..., None], *args: Any) -> None:
    """A worker process's entry point: ``main(*args, parent_pid=...)`` once ``setup`` has taken
    effect; ``parent_pid`` is the process whose death should stop the worker."""
    if not setup.applied:  # forked: nothing was unpickled
        setup = _setup_child(setup.parent_pid, None, setup.name)
    main(*args, parent_pid=setup.parent_pid)


START_METHODS = ("auto", "fork", "spawn", "forkserver")


def resolve_start_method(requested: str) -> str:
    """The multiprocessing start method to start a worker process with now.

    ``auto``: ``fork`` on Linux while no Python thread but the main one runs -- the worker starts
    in milliseconds with every module already imported, instead of spending one to two CPU-seconds
    importing torch again -- and ``spawn`` otherwise: forking copies locks that other threads may
    hold at that instant (W&B's, a joblib launcher's), which can hang the child. So the first
    workers fork, and a restart later in the run, with W&B's threads running, spawns. Native
    threads of OpenBLAS (fork-aware) and torch's OpenMP pool are not counted: a forked worker sets
    one torch thread before any torch op (as torch's DataLoader workers do), so it never enters
    OpenMP. Any other value is used as given."""
    if requested != "auto":
        return requested
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return "spawn"
