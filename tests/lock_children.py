"""Functions that ``test_locks`` runs in spawned children (module-level, and without torch, so a
child starts in a fraction of a second)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from rlplug.locks import RobustLock


def hold_for_ever(lock: Any, holding: Any) -> None:
    """(In a child.) Take the lock, say so, never release it."""
    lock.acquire()
    holding.set()
    while True:
        time.sleep(1)


def hold_then_fork(lock: RobustLock, holding: Any, child_pid: Any) -> None:
    """(In a child.) Take the lock, then fork a grandchild that outlives us."""
    lock.acquire()
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    child_pid.value = pid
    holding.set()
    while True:
        time.sleep(1)


def count_under_lock(lock: RobustLock, total: Any, rounds: int, threads: int) -> None:
    """(In a child, or here.) ``threads`` threads each add 1 to ``total`` ``rounds`` times with a
    read-pause-write that only the lock makes atomic."""
    def work() -> None:
        for _ in range(rounds):
            with lock:
                value = total.value
                time.sleep(0.0002)
                total.value = value + 1

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def create_lock_and_exit(paths: Any) -> None:
    """(In a child.) Create a lock, report its file, exit normally."""
    lock = RobustLock()
    paths.put(lock.path)
