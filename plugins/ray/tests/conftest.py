"""Fixtures of the Ray executor's tests: a real multi-node Ray cluster on this machine (one per
test module: starting one takes seconds), configs composed as the CLI composes them, and training
runs in a background thread so a test can act on the cluster while a run goes on."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_module

from rlplug.config import RunConfig, to_run_config
from rlplug.plugins import install_search_path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

RAY_TESTS_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(RAY_TESTS_DIR))  # the tests import ray_test_support by name
CORE_TESTS_DIR = RAY_TESTS_DIR.parents[2] / "tests"
QUIET = ("logger.mode=disabled", "progress=false", "checkpoint.every_steps=0")
OBJECT_STORE = 80 * 1024 * 1024  # Ray's minimum is 75 MB; the runs move only small objects


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A 2-node Ray cluster (head + one worker node, 1 CPU each) in processes of this machine.
    Each node has its own raylet and object store: to Ray these are two machines."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": OBJECT_STORE, "include_dashboard": False})
    cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


@pytest.fixture(autouse=True)
def no_driver_left_connected() -> Iterator[None]:
    """Every run disconnects its driver (executor.close); a test that fails half-way must not
    leave the next one connected to the wrong cluster."""
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def compose_run() -> Callable[..., RunConfig]:
    """``compose_run(*overrides)``: the validated config ``python -m rlplug <overrides>`` trains
    with (quiet: no W&B, no progress bar, no periodic checkpoint)."""
    def compose_run(*overrides: str) -> RunConfig:
        install_search_path()
        with initialize_config_module(config_module="rlplug.conf", version_base="1.3"):
            return to_run_config(compose("config", overrides=[*QUIET, *overrides]))
    return compose_run


@pytest.fixture
def background(tmp_path: Path) -> Callable[..., Any]:
    """``background(run, name="run")``: a :class:`ray_test_support.Background` run in tmp_path."""
    from ray_test_support import Background

    return lambda run, name="run": Background(run, tmp_path / name)
