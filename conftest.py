"""Test-wide settings and fixtures shared by the core's tests (tests/) and the plugins' tests
(plugins/*/tests/).

* W&B stays offline and writes only into a temporary directory.
* ``compose_run``: configs composed exactly as the CLI composes them.
* ``ctrl_c``: a real ``python -m rlplug`` stopped with Ctrl-C once it reached a given point.
* ``@pytest.mark.alone``: under pytest-xdist (``make test``), no other test runs beside it.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from rlplug.config import RunConfig, to_run_config
from rlplug.plugins import install_search_path

_WANDB_ROOT = tempfile.mkdtemp(prefix="rlplug-tests-wandb-")
for _name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR"):
    os.environ[_name] = os.path.join(_WANDB_ROOT, _name.lower())
    os.makedirs(os.environ[_name], exist_ok=True)
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.pop("WANDB_API_KEY", None)

QUIET_OVERRIDES = ("logger.mode=disabled", "progress=false", "checkpoint.every_steps=0")
HANG_GUARD_S = 300  # only against hangs: a run that needs it has failed


@pytest.fixture
def compose_run() -> Callable[..., RunConfig]:
    """``compose_run(*overrides)``: the validated config ``python -m rlplug <overrides>`` trains
    with (quiet: no W&B, no progress bar, no periodic checkpoint)."""
    def compose_run(*overrides: str) -> RunConfig:
        install_search_path()
        with initialize_config_module(config_module="rlplug.conf", version_base="1.3"):
            return to_run_config(compose("config", overrides=[*QUIET_OVERRIDES, *overrides]))
    return compose_run


def ctrl_c_when(proc: subprocess.Popen, ready: Callable[[], bool], poll_s: float = 0.02) -> str:
    """Wait until ``ready()`` (failing if ``proc`` ends first or hangs), then send ``proc`` SIGINT
    (Ctrl-C) and wait for it to end; returns its stderr (``proc`` has text pipes). The process is
    killed if the test fails on the way."""
    try:
        deadline = time.monotonic() + HANG_GUARD_S
        while not ready():
            assert proc.poll() is None and time.monotonic() < deadline, \
                proc.communicate()[1][-3000:]
            time.sleep(poll_s)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    return stderr


@pytest.fixture(scope="session")
def ctrl_c() -> Callable[..., str]:
    """``ctrl_c(proc, ready, poll_s=0.02)``: see :func:`ctrl_c_when`."""
    return ctrl_c_when


# -- @pytest.mark.alone under pytest-xdist ----------------------------------------------------------
# A learning test whose workers act asynchronously (their interleaving, and so what they learn,
# depends on the cores they get; its threshold was measured with the machine to itself) takes an
# exclusive lock that every other test takes shared, in the session's temporary directory that
# the xdist workers share. A turnstile lock gives the exclusive test precedence: once it waits,
# no other test starts until it has run. The lock covers a test's setup and teardown (module
# fixtures included), not only its call.
def _flock(path: Path, mode: int) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    basetemp = item.config.option.basetemp
    if not hasattr(item.config, "workerinput") or basetemp is None:
        return (yield)  # not an xdist worker: tests run one at a time anyway
    shared = Path(basetemp).parent  # an xdist worker's basetemp is <session basetemp>/popen-gwN
    alone = item.get_closest_marker("alone") is not None
    turnstile = _flock(shared / "alone.turnstile", fcntl.LOCK_EX)
    try:
        held = _flock(shared / "alone.lock", fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
    finally:
        os.close(turnstile)
    try:
        return (yield)
    finally:
        os.close(held)
