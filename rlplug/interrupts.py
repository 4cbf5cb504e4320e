"""Ctrl-C and SIGTERM outside the training loop: start-up, the evaluate CLI, parallel sweeps.

While workers run, :func:`rlplug.control.record_signals` only records signals and the run stops
cleanly. Around that:

* **Before a run starts** (``python -m rlplug`` importing and checking its input, or
  ``python -m rlplug.evaluate``): a signal ends the process at once, with one line and 130
  (SIGINT) or 143 (SIGTERM), and a summary.json if Hydra already made the run directory
  (:func:`raise_on_signals`).
* **While a run starts** (building, resuming, ``wandb.init``): SIGINT raises
  ``KeyboardInterrupt`` and SIGTERM :class:`Terminated` (a ``KeyboardInterrupt``) so ``train()``
  unwinds and leaves a summary.json (status ``interrupted``); :func:`quiet_interrupts` turns
  what is left into one line. Inside an ``import`` the exception waits until the import is
  over (see ``_inside_import``).
* **Parallel sweeps** (``hydra/launcher=joblib``): the jobs run in loky worker processes.
  joblib answers a ``KeyboardInterrupt`` in its parent, or an exception a job lets out, by
  killing every worker, which loses the running jobs' checkpoints and summaries; and a SIGTERM
  to the parent alone leaves the workers training and starting the queued jobs. So
  :func:`guard_parallel_sweep` makes the parent's SIGINT/SIGTERM *stop the sweep*: it forwards the
  signal to the loky workers and waits for them. Each running job stops as a single run does
  (interrupted, outputs saved); queued jobs do not start (:func:`sweep_stopped`); then the parent
  exits 130 or 143 and no process is left. In the workers, :func:`_worker_init` (the loky
  initializer) installs the matching handler; the parent starts its workers with SIGINT/SIGTERM
  blocked, so a Ctrl-C that reaches a worker still starting up waits for that handler instead of
  killing it (which would make loky kill all the others).
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_FILE_ENV = "RLPLUG_SWEEP_STOP_FILE"


class Terminated(KeyboardInterrupt):
    """SIGTERM outside the training loop, raised like Ctrl-C so the same clean-up runs."""


def interrupt_exit_code(exc: BaseException) -> int:
    return 143 if isinstance(exc, Terminated) else 130


def _raise_for(signum: int) -> None:
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


# -- start-up ----------------------------------------------------------------------------------
# An exception raised in the middle of an ``import`` is the worst moment: the module stays half
# imported (numpy then refuses to load again), some libraries swallow it (the run then goes on
# as if nothing happened), and one raised inside ``exec`` (dataclasses build their methods that
# way) makes CPython 3.11 kill itself with SIGINT at exit whatever the exit code. So a signal
# that arrives inside an import is held back and delivered as soon as the import is over (a
# SIGALRM checks every 20 ms).
_RETRY_S = 0.02


class _Startup:
    # True while no run has started (the CLI imports, checks its input): a signal then ends the
    # process at once, even inside an import, with one line (SystemExit runs the atexit hooks)
    exit_mode = False
    on_exit: Callable[[], str | None] | None = None  # may save something, returns a note
    deferred: list[int] = []


def _inside_import(frame: Any) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _deliver(signum: int) -> None:
    if _Startup.exit_mode:
        _exit_now(signum)
    _raise_for(signum)


def _exit_now(signum: int) -> None:
    """End the process from the signal handler: nothing of a run has started, so there is
    nothing to stop. No exception is raised: one that unwinds through a library's clean-up code
    (Hydra composing a config, say) can come out as another error with a traceback. The atexit
    hooks still run (they release multiprocessing's semaphores, flush the logs)."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    note = None
    if _Startup.on_exit is not None:
        try:
            note = _Startup.on_exit()
        except Exception:  # noqa: BLE001 - the exit must stay quiet and immediate
            note = None
    try:
        print(f"{_cli_name()}: interrupted{'; ' + note if note else ''}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        atexit._run_exitfuncs()
    finally:
        os._exit(143 if signum == signal.SIGTERM else 130)


def _on_startup_signal(signum: int, frame: Any) -> None:
    if _Startup.exit_mode:
        _deliver(signum)
    if _inside_import(frame):
        if not _Startup.deferred:
            _Startup.deferred.append(signum)
            signal.setitimer(signal.ITIMER_REAL, _RETRY_S)
        return
    _Startup.deferred.clear()
    _deliver(signum)


def _on_retry_alarm(_signum: int, frame: Any) -> None:
    if not _Startup.deferred:
        return
    signum = _Startup.deferred[0]
    handler = signal.getsignal(signum)
    if handler is _on_sweep_signal and not _state.job_active:
        _Startup.deferred.clear()  # the job it was meant for is over; the sweep knows
        return
    if handler not in (_on_startup_signal, _on_sweep_signal):  # the run's handling took over
        _Startup.deferred.clear()
        os.kill(os.getpid(), signum)  # hand it the signal
        return
    if _inside_import(frame):
        signal.setitimer(signal.ITIMER_REAL, _RETRY_S)
        return
    _Startup.deferred.clear()
    _deliver(signum)


def _install_startup_handlers(exit_mode: bool) -> None:
    _Startup.exit_mode = exit_mode
    for s in SIGNALS:
        signal.signal(s, _on_startup_signal)
    if signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, _on_retry_alarm, None):
        signal.signal(signal.SIGALRM, _on_retry_alarm)


def raise_on_signals(until_a_run_starts: Callable[[], str | None] | None = None
                     ) -> dict[int, Any]:
    """From now on, SIGINT raises ``KeyboardInterrupt`` and SIGTERM :class:`Terminated` in the
    main thread, except inside an import, where they wait for its end (instead of ending the
    process on the spot, which writes nothing, or breaking a module for good). Returns the
    handlers it replaced.

    With ``until_a_run_starts``: until :func:`running_job` marks a run as started, a signal ends
    the process at once (one line, 130 or 143) after calling it (it may leave a summary)."""
    if not _in_main_thread():
        return {}
    previous = {s: signal.getsignal(s) for s in (*SIGNALS, signal.SIGALRM)}
    _Startup.on_exit = until_a_run_starts
    _install_startup_handlers(exit_mode=until_a_run_starts is not None)
    return previous


def restore_signals(previous: dict[int, Any]) -> None:
    """Put back what :func:`raise_on_signals` returned (a CLI ``main`` called in-process)."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    _Startup.deferred.clear()
    _Startup.exit_mode, _Startup.on_exit = False, None
    for s, handler in previous.items():
        if handler is not None:
            signal.signal(s, handler)


def exit_quietly_while_importing() -> None:
    """For ``python -m rlplug[.evaluate|.report]``, called from ``rlplug/__init__``: a Ctrl-C or
    SIGTERM while the CLI still imports (torch, gymnasium: a few seconds) ends it with one line and
    130 (143), not a traceback. The CLI's ``main`` then takes the signals over
    (:func:`raise_on_signals`)."""
    if _in_main_thread() and signal.getsignal(signal.SIGINT) is signal.default_int_handler \
            and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        _install_startup_handlers(exit_mode=True)


def _cli_name() -> str:
    argv = getattr(sys, "orig_argv", [])
    if "-m" in argv[:-1]:
        return argv[argv.index("-m") + 1]
    return "rlplug"


def _forget_unhandled_interrupt() -> None:
    """CPython 3.11 marks a KeyboardInterrupt that passed through ``exec`` of a string as
    unhandled even when it was caught, and then ends the process with SIGINT instead of our exit
    code. Clear that mark (a no-op where the interpreter does not expose it)."""
    try:
        import ctypes  # only on this rare path (an interrupted start)

        ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt").value = 0
    except (ImportError, ValueError, AttributeError, OSError):
        pass


@contextmanager
def ignoring_signals() -> Iterator[None]:
    """SIGINT/SIGTERM are ignored inside (a second Ctrl-C must not cut a final write short)."""
    if not _in_main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def quiet_interrupts(prog: str, on_interrupt: Callable[[], str | None] | None = None
                     ) -> Iterator[None]:
    """Ctrl-C (or SIGTERM, see :func:`raise_on_signals`) inside: one line on stderr,
    ``<prog>: interrupted``, and exit code 130 (143 for SIGTERM), no traceback.
    ``on_interrupt`` may save something first and return a note for that line."""
    try:
        yield
    except KeyboardInterrupt as exc:
        _forget_unhandled_interrupt()
        note = None
        with ignoring_signals():
            if on_interrupt is not None:
                try:
                    note = on_interrupt()
                except Exception:  # noqa: BLE001 - the exit must stay quiet and immediate
                    note = None
            print(f"{prog}: interrupted{'; ' + note if note else ''}", file=sys.stderr)
        raise SystemExit(interrupt_exit_code(exc)) from None


# -- parallel sweeps ---------------------------------------------------------------------------
class _SweepState:
    def __init__(self) -> None:
        self.received: list[int] = []  # signals that stopped the sweep, in order (this process)
        self.in_worker = False  # this process is a loky worker of a guarded sweep
        self.job_active = False  # a job (hydra_main) is running in this process
        self.stop_file: Path | None = None  # created by the parent once the sweep stops


_state = _SweepState()


def sweep_signal() -> int | None:
    """The signal that stopped this process's sweep, if any."""
    return _state.received[0] if _state.received else None


def in_sweep_worker() -> bool:
    """True inside a loky worker of a guarded parallel sweep: a job there must not raise
    ``SystemExit``/``KeyboardInterrupt`` (joblib would kill every other job)."""
    return _state.in_worker


def sweep_stopped() -> bool:
    """The sweep this process belongs to was stopped: a job that has not started must not."""
    if _state.received:
        return True
    path = os.environ.get(STOP_FILE_ENV)
    return bool(path) and Path(path).exists()


@contextmanager
def running_job() -> Iterator[None]:
    """Marks a job as running in this process: a sweep's stop signal then interrupts it (as
    Ctrl-C would) instead of only being recorded."""
    _state.job_active, exit_mode = True, _Startup.exit_mode
    _Startup.exit_mode = False  # the run cleans up after itself (KeyboardInterrupt)
    try:
        yield
    finally:
        _state.job_active, _Startup.exit_mode = False, exit_mode


def _on_sweep_signal(signum: int, frame: Any) -> None:
    first = not _state.received
    _state.received.append(signum)
    if first and _state.stop_file is not None:  # the parent
        try:
            _state.stop_file.touch()
        except OSError:
            pass
        for child in multiprocessing.active_children():  # the loky workers
            try:
                os.kill(child.pid, signum)
            except (OSError, TypeError):
                pass
    if _state.job_active:  # a job runs in this very process: stop it like a single run
        _on_startup_signal(signum, frame)


def _worker_init() -> None:
    """The loky initializer: runs first in every worker process of a guarded sweep."""
    _state.in_worker = True
    for s in SIGNALS:
        signal.signal(s, _on_sweep_signal)
    signal.signal(signal.SIGALRM, _on_retry_alarm)
    # Started with the signals blocked (see _GuardedLokyBackend): deliver any that arrived
    # meanwhile to the handler above.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)


def _remove_stop_file(path: Path) -> None:
    path.unlink(missing_ok=True)


def guard_parallel_sweep() -> None:
    """In the parent of a ``hydra/launcher=joblib`` sweep, before Hydra launches it (see the
    module docstring)."""
    if not _in_main_thread() or _state.stop_file is not None:
        return
    # joblib: an optional dependency (the sweep extra), needed only for parallel sweeps
    from joblib import register_parallel_backend
    from joblib._parallel_backends import LokyBackend  # the backend Hydra's launcher asks for

    class _GuardedLokyBackend(LokyBackend):
        """loky as Hydra's launcher asks for it, plus :func:`_worker_init` in every worker; the
        workers start with SIGINT/SIGTERM blocked until that initializer handles them."""

        def configure(self, n_jobs: int = 1, parallel: Any = None, **kwargs: Any) -> int:
            kwargs.setdefault("initializer", _worker_init)
            previous = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
            try:
                n = super().configure(n_jobs, parallel, **kwargs)
                # Start every worker now, from this thread with the signals blocked (the mask
                # is inherited); loky would otherwise start them on the first submit.
                self._workers.submit(int)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)
            return n

    register_parallel_backend("loky", _GuardedLokyBackend)
    fd, name = tempfile.mkstemp(prefix=f"rlplug-sweep-{os.getpid()}-", suffix=".stop")
    os.close(fd)
    os.unlink(name)  # only its name is used: the file exists once the sweep is stopped
    _state.stop_file = Path(name)
    os.environ[STOP_FILE_ENV] = name
    atexit.register(_remove_stop_file, _state.stop_file)
    for s in SIGNALS:
        signal.signal(s, _on_sweep_signal)
    signal.signal(signal.SIGALRM, _on_retry_alarm)
