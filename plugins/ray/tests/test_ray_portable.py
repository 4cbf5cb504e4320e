"""What travels to another machine: the model and the worker function, with their locks made
local to the receiving process (a lock cannot be shared across machines)."""

from __future__ import annotations

import multiprocessing as mp

import torch

from rlplug.locks import RobustLock
from rlplug.testing import CountingModel
from rlplug_ray import portable


def test_a_multiprocessing_lock_arrives_as_a_lock_of_the_receiving_process():
    model = CountingModel(size=3)  # its lock is a multiprocessing lock (spawn context)
    copy = portable.loads(portable.dumps(model))
    assert type(copy._lock).__module__ == "_thread"
    assert copy.push(torch.ones(3), 0.5) == 1  # the copy works, under its own lock
    assert torch.equal(copy.params, torch.full((3,), -0.5))
    assert model.version == 0  # the original was not touched: it is a copy
    lock = mp.get_context("spawn").RLock()
    assert type(portable.loads(portable.dumps(lock))).__name__ == "RLock"


def test_a_robust_lock_arrives_without_its_lock_file():
    """A RobustLock pickles the path of a file on the machine that made it; on another machine
    that file does not exist, so the copy is a process-local lock with the same interface."""
    lock = RobustLock()
    copy = portable.loads(portable.dumps({"lock": lock}))["lock"]
    assert isinstance(copy, portable.LocalLock)
    assert copy.acquire(timeout=0.1)
    assert not copy.acquire(timeout=0.01)  # taken: a second acquire times out
    copy.release()
    with copy:
        pass
    with lock:  # the original is untouched and still works
        pass
