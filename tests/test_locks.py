"""rlplug.locks.RobustLock: mutual exclusion between threads and processes that the death of its
holder cannot orphan, and the pool's counters built on it (a retired worker changes nothing).

Real processes (spawned, as the process executor starts them; their functions are in
``lock_children``, which imports no torch) and real SIGKILLs.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import pickle
import signal
import threading
import time
from multiprocessing.sharedctypes import RawValue
from pathlib import Path
from typing import Any

import psutil
import pytest

from rlplug.counters import SharedCounters
from rlplug.locks import RobustLock
from rlplug.workerpool import PoolState, StopFlag, WorkerCounters

SPAWN = mp.get_context("spawn")
TESTS_DIR = Path(__file__).resolve().parent


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The ``lock_children`` module (spawned children find it: they inherit sys.path)."""
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    import lock_children

    return lock_children


def start_holder(children: Any, lock: Any) -> tuple[Any, Any]:
    holding = SPAWN.Event()
    holder = SPAWN.Process(target=children.hold_for_ever, args=(lock, holding), daemon=True)
    holder.start()
    assert holding.wait(60), "the child never took the lock"
    return holder, holding


def test_lock_held_by_a_killed_process_is_free_again(children):
    lock = RobustLock()
    holder, _ = start_holder(children, lock)
    assert not lock.acquire(timeout=0.3)  # really held

    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)

    assert lock.acquire(timeout=5)
    lock.release()


def test_a_multiprocessing_lock_would_stay_held_for_ever(children):
    # The hazard RobustLock removes (a sanity check of the test above).
    lock = SPAWN.Lock()
    holder, _ = start_holder(children, lock)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)

    assert not lock.acquire(timeout=1.0)


def test_a_forked_child_of_the_holder_does_not_keep_the_lock(children):
    lock = RobustLock()
    holding, grandchild = SPAWN.Event(), SPAWN.Value("i", 0)
    holder = SPAWN.Process(target=children.hold_then_fork, args=(lock, holding, grandchild), daemon=True)
    holder.start()
    assert holding.wait(60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    try:
        assert psutil.pid_exists(grandchild.value)
        assert lock.acquire(timeout=5), "the holder's forked child kept the lock"
        lock.release()
    finally:
        os.kill(grandchild.value, signal.SIGKILL)


def test_lock_excludes_threads_of_several_processes(children):
    lock, total = RobustLock(), RawValue("q", 0)
    rounds, threads = 150, 3
    others = [SPAWN.Process(target=children.count_under_lock, args=(lock, total, rounds, threads))
              for _ in range(2)]
    for child in others:
        child.start()
    children.count_under_lock(lock, total, rounds, threads)
    for child in others:
        child.join(120)
        assert child.exitcode == 0

    assert total.value == 3 * rounds * threads


def test_timed_acquire_gives_up_while_another_thread_holds_the_lock():
    lock = RobustLock()
    lock.acquire()
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(lock.acquire(timeout=0.2)))
    waiter.start()
    waiter.join()
    lock.release()

    assert got == [False]
    assert lock.acquire(timeout=0)
    lock.release()


def test_lock_file_is_removed_with_the_lock_that_created_it(children):
    lock = RobustLock()
    path = Path(lock.path)
    copy = pickle.loads(pickle.dumps(lock))  # another user of the same lock
    with copy:
        pass
    del copy
    gc.collect()
    assert path.exists()  # only the creator removes it
    del lock
    gc.collect()
    assert not path.exists()

    # A worker process that creates one (and exits through multiprocessing, skipping atexit).
    paths = SPAWN.Queue()
    child = SPAWN.Process(target=children.create_lock_and_exit, args=(paths,))
    child.start()
    child_path = Path(paths.get(timeout=60))
    child.join(60)
    assert not child_path.exists()


def test_lock_files_of_killed_creators_are_removed_by_the_next_lock(children, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    dead = SPAWN.Process(target=children.create_lock_and_exit, args=(SPAWN.Queue(),))
    dead.start()
    dead.join(60)  # its pid is gone now
    prefix = Path(RobustLock().path).name.rsplit("-", 2)[0]  # rlplug-<host>-<pid namespace>
    stale = tmp_path / f"{prefix}-{dead.pid}-left.lock"
    held = tmp_path / f"{prefix}-{dead.pid}-held.lock"
    elsewhere = tmp_path / f"rlplug-otherhost-{prefix.rsplit('-', 1)[1]}-{dead.pid}-x.lock"
    for path in (stale, held, elsewhere):
        path.touch()
    survivor = RobustLock.__new__(RobustLock)  # still holds the dead creator's lock
    survivor.__setstate__({"path": str(held)})
    survivor.acquire()
    try:
        live = RobustLock()  # sweeps; this process is alive, so its own file stays
        RobustLock()
        assert not stale.exists()
        assert held.exists() and Path(live.path).exists()
        assert elsewhere.exists()  # another host's pids say nothing here
    finally:
        survivor.release()


# -- the pool's counters ---------------------------------------------------------------------------
@pytest.fixture
def pool_counters() -> tuple[SharedCounters, PoolState]:
    counters, state = SharedCounters(), PoolState(2)
    state.go.value = 1  # no start barrier here
    return counters, state


def test_retired_worker_changes_nothing_and_its_reservation_returns_to_the_budget(pool_counters):
    counters, state = pool_counters
    stop = StopFlag()
    hung = WorkerCounters(counters, state, 0, stop)
    other = WorkerCounters(counters, state, 1, stop)
    assert hung.reserve_steps(10, 30) == 10
    assert other.reserve_steps(15, 30) == 15
    assert other.add(15, 1) == 15
    assert other.reserve_steps(10, 30) == 5  # 10 held by the hung worker

    assert hung.retire(timeout=1) == 10
    # the hung worker wakes up: nothing it does counts, and it is told to stop
    assert hung.add(10, 2) == 15 and counters.episodes == 1
    assert hung.reserve_steps(10, 30) == 0
    assert hung.revoked

    replacement = WorkerCounters(counters, state, 0, stop)
    assert replacement.reserve_steps(20, 30) == 10  # what the hung worker held is free again
    replacement.add(10)
    other.add(5)
    assert counters.env_steps == 30


def test_kill_between_counting_and_reducing_the_reservation_is_repaired(pool_counters):
    counters, state = pool_counters
    worker = WorkerCounters(counters, state, 0, StopFlag())
    assert worker.reserve_steps(10, 20) == 10
    # What a worker killed inside add() leaves: its steps counted, its reservation not reduced.
    counters._record(10, 1)
    assert worker.retire(timeout=1) == 10

    replacement = WorkerCounters(counters, state, 0, StopFlag())
    assert replacement.reserve_steps(50, 20) == 10  # the budget is exact again
    assert counters.env_steps == 10


def test_retire_gives_up_while_a_live_worker_holds_the_counters_lock(pool_counters, children):
    counters, state = pool_counters
    worker = WorkerCounters(counters, state, 0, StopFlag())
    holder, _ = start_holder(children, counters._lock)
    try:
        started = time.monotonic()
        assert worker.retire(timeout=0.3) is None
        assert time.monotonic() - started < 5
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(10)
    assert worker.retire(timeout=5) == 0
