"""Fixtures of the Ray executor's tests: a real multi-node Ray cluster on this machine (one per
test module: starting one takes seconds), and training runs in a background thread so a test can
act on the cluster while a run goes on. (``compose_run``, configs composed as the CLI composes
them, comes from the repository's conftest.py.)"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

RAY_TESTS_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(RAY_TESTS_DIR))  # the tests import ray_test_support by name
CORE_TESTS_DIR = RAY_TESTS_DIR.parents[2] / "tests"
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
def background(tmp_path: Path) -> Callable[..., Any]:
    """``background(run, name="run")``: a :class:`ray_test_support.Background` run in tmp_path."""
    from ray_test_support import Background

    return lambda run, name="run": Background(run, tmp_path / name)
