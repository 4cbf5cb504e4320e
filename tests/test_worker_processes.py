"""rlplug.worker_processes: whether process workers fit (memory, open files) before any starts.
The CLI path (``executor.workers=1000`` refused with one line, exit 2) is in the A3C plugin's
``test_process_faults.py``; the start and death handling of workers too."""

from __future__ import annotations

import logging
import subprocess
import sys

import psutil
import pytest

from rlplug.errors import UserError
from rlplug.worker_processes import WORKER_MEMORY_MB, check_workers_fit, warn_if_tight


def available_workers() -> float:
    return psutil.virtual_memory().available / 2**20 / WORKER_MEMORY_MB


def test_workers_beyond_the_available_memory_are_refused_with_a_count_that_fits():
    too_many = int(available_workers() * 1.5) + 2
    with pytest.raises(UserError) as err:
        check_workers_fit(too_many)
    message = str(err.value)
    assert "\n" not in message
    assert f"executor.workers={too_many} process workers need about" in message
    suggested = int(message.rsplit("executor.workers=", 1)[1])
    assert 1 <= suggested <= available_workers() * 1.1


def test_workers_taking_most_of_the_memory_start_with_a_warning(caplog):
    tight = int(available_workers() * 0.85)
    check_workers_fit(tight)  # fits
    with caplog.at_level(logging.WARNING, logger="rlplug.worker_processes"):
        warn_if_tight(tight)
        warn_if_tight(1)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and f"{tight} process workers need about" in warnings[0]


def test_open_file_limit_is_raised_for_many_workers_or_refused_beyond_the_hard_limit():
    # In a child: the limits are the process's own.
    code = """
import resource
from rlplug.errors import UserError
from rlplug.worker_processes import check_workers_fit
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 150))
check_workers_fit(20)
print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
try:
    check_workers_fit(25)
except UserError as exc:
    print(exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    raised, refused = out.stdout.strip().splitlines()
    assert int(raised) >= 20 * 4
    assert "need about" in refused and "open files" in refused and "ulimit -Hn" in refused
