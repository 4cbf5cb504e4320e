"""Faults injected into real runs for the process-reliability tests (``test_process_faults.py``).

A run selects ``env.id=a3c_fault_injection:Fault-v0`` (gymnasium's ``module:id`` form imports this
module in the main process and in every worker, as long as this directory is on ``PYTHONPATH``)
with ``+env.kwargs.fault=...``, ``+env.kwargs.at=N`` and ``+env.kwargs.marker=<path>``:

* ``hang``: the env's ``step`` sleeps ``hang_s`` seconds (default: for ever) at its ``at``-th step;
* ``optimizer_lock``: the worker stops inside the shared optimizer's critical section (with its
  lock held, after its ``at``-th update was applied) and sleeps there for ever;
* ``counters_lock``: the worker stops inside the counters' critical section of its ``at``-th
  ``add`` -- after the steps were counted, before its reservation was reduced -- and sleeps there.

Only one worker of a run suffers the fault: the first to reach it claims ``marker`` (created
exclusively) and writes its pid there, so the test knows whom to kill; a restarted worker finds the
marker taken. A worker that wakes from a finite hang writes ``<marker>.woke``.
"""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from typing import Any

import gymnasium as gym
from a3c_failure_helpers import PacedEnv

FAULT_ID = "Fault-v0"
_installed: set[str] = set()  # lock faults already patched into this process


def claim(marker: str) -> bool:
    """Whether this process is the first to reach the fault (it then writes its pid)."""
    draft = f"{marker}.{os.getpid()}.{threading.get_ident()}"
    with open(draft, "w") as f:
        f.write(str(os.getpid()))
    try:
        os.link(draft, marker)  # atomic, and fails if another worker claimed it first
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(draft)


def _sleep(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(1.0, deadline - time.monotonic()) if math.isfinite(seconds) else 1.0)


def _hold_after(cls: type, name: str, at: int, marker: str) -> None:
    """Wrap ``cls.name`` so that its ``at``-th call in this process, if this process claims the
    marker, never returns (it is called with a lock held)."""
    original = getattr(cls, name)
    calls = [0]

    @functools.wraps(original)
    def held(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        calls[0] += 1
        if calls[0] == at and claim(marker):
            _sleep(math.inf)
        return result

    setattr(cls, name, held)


def install_lock_fault(fault: str, at: int, marker: str) -> None:
    if fault in _installed:
        return
    _installed.add(fault)
    if fault == "optimizer_lock":
        from rlplug_a3c.shared_optim import SharedAdam, SharedRMSprop

        for cls in (SharedAdam, SharedRMSprop):  # _update runs inside SharedOptimizer.step's lock
            _hold_after(cls, "_update", at, marker)
    elif fault == "counters_lock":
        from rlplug.counters import SharedCounters

        _hold_after(SharedCounters, "_record", at, marker)  # inside add()'s lock
    else:
        raise ValueError(f"unknown fault {fault!r}")


class FaultEnv(PacedEnv):
    """:class:`PacedEnv` (20-step episodes, each step at least ``step_s``) with one fault."""

    def __init__(self, marker: str, fault: str = "hang", at: int = 100,
                 hang_s: float = math.inf, step_s: float = 0.0005) -> None:
        super().__init__(step_s=step_s)
        self.marker, self.fault, self.at, self.hang_s = marker, fault, at, hang_s
        if fault != "hang":
            install_lock_fault(fault, at, marker)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        if self.fault == "hang" and self.steps + 1 == self.at and claim(self.marker):
            _sleep(self.hang_s)
            with open(self.marker + ".woke", "w") as f:
                f.write(str(os.getpid()))
        return super().step(action)


if FAULT_ID not in gym.registry:
    gym.register(FAULT_ID, entry_point=FaultEnv)
