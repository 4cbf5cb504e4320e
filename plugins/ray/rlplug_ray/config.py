"""``executor=ray``: its settings, registered as the option's dataclass.

This module is imported on every command line (the ``rlplug.configs`` hook), so it must not
import Ray; the settings that need the cluster (can it be reached, does a worker fit on a node)
are checked when the executor connects, before any worker starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore

from rlplug.config import require
from rlplug.errors import UserError
from rlplug.workerpool import WorkerPoolConfig

AUTO = "auto"


@dataclass
class RayExecutorConfig(WorkerPoolConfig):
    """Workers as Ray actors; the pool settings (workers, on_worker_failure, max_restarts,
    stop_timeout_s) mean what they mean for the process executor."""

    name: str = "ray"
    # null: start a local Ray instance for this run and shut it down afterwards;
    # auto: join the Ray cluster this machine belongs to (`ray start` ran here);
    # host:port: the head node of a running cluster (its GCS address, e.g. 10.0.0.1:6379)
    address: str | None = None
    num_cpus_per_worker: float = 1.0  # Ray CPUs each worker actor reserves (fractions allowed)
    object_store_mb: int = 256  # object store of the local instance (address=null) only

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.num_cpus_per_worker > 0, "executor.num_cpus_per_worker", "must be > 0",
                self.num_cpus_per_worker, "executor.num_cpus_per_worker=1")
        require(self.object_store_mb >= 80, "executor.object_store_mb",
                "must be >= 80 (Ray's minimum is 75 MB)", self.object_store_mb,
                "executor.object_store_mb=256")
        if self.address is not None:
            parse_address(self.address)


def parse_address(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of an explicit ``host:port`` address, None for ``auto``; a
    :class:`UserError` for anything else."""
    if address == AUTO:
        return None
    if address.startswith("ray://"):
        raise UserError(f"executor.address={address}: Ray Client (ray://) addresses are not "
                        f"supported; run rlplug on a node of the cluster with "
                        f"executor.address=auto (or the head's host:port, e.g. 10.0.0.1:6379)")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"executor.address must be null (a local Ray instance), auto (the "
                        f"running cluster) or host:port of a Ray head node, got {address!r}; "
                        f"set e.g. executor.address=auto")
    return host, int(port)


def register() -> str:
    """Store ``executor=ray`` in Hydra's ConfigStore; return this plugin's config search path."""
    ConfigStore.instance().store(group="executor", name="ray", node=RayExecutorConfig)
    return "pkg://rlplug_ray.conf"
