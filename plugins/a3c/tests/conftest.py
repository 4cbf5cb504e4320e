"""Shared fixtures of the A3C plugin's foundation tests: workers built on the real algorithm,
training runs in-process, and a guard that no worker outlives its test. (``compose_run``, the
config the CLI would compose, comes from the repository's conftest.py.)"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rlplug.build import build_algorithm
from rlplug.config import RunConfig
from rlplug.contracts import WorkerContext
from rlplug.counters import SharedCounters
from rlplug.envs import probe_env
from rlplug.run import RunResult, train
from rlplug.testing import assert_nothing_left, live_child_processes
from rlplug_a3c.algorithm import A3C
from rlplug_a3c.worker import A3CWorker

A3C_TESTS_DIR = Path(__file__).resolve().parent


@pytest.fixture
def support_on_path(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make ``a3c_test_support`` importable here and in spawned workers (they inherit sys.path)."""
    monkeypatch.syspath_prepend(str(A3C_TESTS_DIR))
    return A3C_TESTS_DIR


@pytest.fixture
def train_run(compose_run: Callable[..., RunConfig], tmp_path: Path) -> Callable[..., RunResult]:
    """``train_run(*overrides, run_dir=None)``: a real in-process training run (``rlplug.run.train``)."""
    def train_run(*overrides: str, run_dir: Path | None = None) -> RunResult:
        return train(compose_run(*overrides), run_dir or tmp_path / "run")
    return train_run


def worker_for(algo: A3C, seed: int = 123, send: Callable[[Any], None] | None = None,
               total_steps: int = 10**9) -> A3CWorker:
    """An A3CWorker on ``algo``'s hosted model, built as ``A3C.run_worker`` builds it, outside any
    executor (rank 0, its own counters)."""
    ctx = WorkerContext(rank=0, seed=seed, counters=SharedCounters(), model=algo.model,
                        total_steps=total_steps, send=send or (lambda _msg: None),
                        stop_requested=lambda: False)
    return A3CWorker(ctx, algo.cfg, algo.env_cfg, algo.head, algo.build_network)


@pytest.fixture
def make_worker(compose_run: Callable[..., RunConfig]) -> Callable[..., A3CWorker]:
    """``make_worker(*overrides, seed=..., messages=None)``: one A3CWorker on the real algorithm,
    outside any executor (messages it sends go to the ``messages`` list if given)."""
    def make_worker(*overrides: str, seed: int = 123, messages: list[Any] | None = None) -> A3CWorker:
        run = compose_run(*overrides)
        algo = build_algorithm(run, probe_env(run.env))
        assert isinstance(algo, A3C)
        sink = messages if messages is not None else []
        return worker_for(algo, seed, sink.append, run.total_steps)
    return make_worker


@pytest.fixture
def no_leftovers() -> Iterator[None]:
    """Fail the test if a thread or process started during it is still running at its end."""
    import threading

    threads = {t.ident for t in threading.enumerate() if t.ident is not None}
    processes = live_child_processes()
    yield
    assert_nothing_left(threads, processes, what="the test")


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    """Rows of a run's metrics.jsonl."""
    with (run_dir / "metrics.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture
def metrics_rows() -> Callable[[Path], list[dict[str, Any]]]:
    """``metrics_rows(run_dir)``: the rows of the run's metrics.jsonl."""
    return read_rows
