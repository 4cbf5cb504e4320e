"""Connecting to Ray for one run, and checking that the run's workers fit the cluster.

Every failure here is a one-line :class:`~rlplug.errors.UserError` raised before any worker starts:
an address that cannot be reached is tried for a few seconds, not waited on.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum

from rlplug.errors import UserError
from rlplug_ray.config import AUTO, RayExecutorConfig, parse_address

log = logging.getLogger(__name__)

MB = 1024 * 1024
REACH_TIMEOUT_S = 5.0


class Connection(Enum):
    STARTED = "started"  # a local instance for this run: shut it down afterwards
    JOINED = "joined"  # connected to a running cluster: disconnect afterwards
    REUSED = "reused"  # this process was already connected (e.g. a notebook): leave it so


def connect(cfg: RayExecutorConfig) -> Connection:
    """Start or join Ray as ``executor.address`` says."""
    import ray

    if ray.is_initialized():
        log.info("using this process's existing Ray connection (executor.address is ignored)")
        return Connection.REUSED
    if cfg.address is None:
        return _start_local(cfg)
    target = parse_address(cfg.address)
    if target is not None:
        _check_reachable(*target, cfg.address)
    try:
        with _own_sigterm_handler():
            ray.init(address=cfg.address, logging_level=logging.WARNING, log_to_driver=True)
    except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError, ...: one line each
        if cfg.address == AUTO:
            raise UserError("executor.address=auto, but no Ray cluster runs on this machine; "
                            "start one with `ray start --head` (or set executor.address=null for "
                            "a local instance)") from exc
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot connect to Ray at executor.address={cfg.address}: "
                        f"{first}") from exc
    return Connection.JOINED


def _start_local(cfg: RayExecutorConfig) -> Connection:
    import ray

    cpus = os.cpu_count() or 1
    if cfg.num_cpus_per_worker > cpus:
        raise UserError(f"executor.num_cpus_per_worker={cfg.num_cpus_per_worker:g} is more than "
                        f"this machine's {cpus} CPUs (a local Ray instance, executor.address=null);"
                        f" set executor.num_cpus_per_worker=1")
    # As many Ray CPUs as the workers ask for, like the process executor, which starts every
    # worker whatever the core count: the OS shares the cores.
    num_cpus = max(cpus, math.ceil(cfg.workers * cfg.num_cpus_per_worker))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a private instance: report nothing
    # address="local" starts a new instance even if RAY_ADDRESS points at a cluster.
    with _own_sigterm_handler():
        ray.init(address="local", num_cpus=num_cpus, object_store_memory=cfg.object_store_mb * MB,
                 include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True)
    return Connection.STARTED


@contextmanager
def _own_sigterm_handler() -> Iterator[None]:
    """Keep the run's SIGTERM handler: ``ray.init`` replaces it with ``sys.exit``, which would
    end a run at an arbitrary point instead of stopping it cleanly (exit 143, outputs saved)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, handler)


# An HTTP/2 client preface and an empty SETTINGS frame: a gRPC server such as Ray's GCS answers
# with a SETTINGS frame of its own (frame type 4 in byte 3); a web page (the dashboard's port, say)
# does not. Without this check, ray.init waits for minutes on a port that is not a Ray head.
_HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_SETTINGS = 4


def _check_reachable(host: str, port: int, address: str) -> None:
    """A one-line error unless a gRPC server (a Ray head's GCS) answers at host:port."""
    try:
        sock = socket.create_connection((host, port), timeout=REACH_TIMEOUT_S)
    except OSError as exc:
        raise UserError(f"cannot reach Ray at executor.address={address} "
                        f"({exc.strerror or exc}); start the head node with `ray start --head` "
                        f"and pass the address it prints, or use executor.address=auto on a node "
                        f"of the cluster") from exc
    with sock:
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
            return  # a TLS handshake comes first: nothing to check in plain text
        answer = b""
        try:
            sock.sendall(_HTTP2_HELLO)
            while len(answer) < 9:
                chunk = sock.recv(9 - len(answer))
                if not chunk:
                    break
                answer += chunk
        except OSError:  # reset or timed out: not a gRPC server either
            pass
    if len(answer) < 9 or answer[3] != _SETTINGS:
        raise UserError(f"executor.address={address} answers, but not as a Ray head node: pass "
                        f"the address `ray start --head` printed (its port is 6379 by default; "
                        f"8265 is the dashboard's)")


def check_resources(cfg: RayExecutorConfig) -> None:
    """Every worker must fit on some node, and all of them in the cluster: otherwise they would
    wait for CPUs that never come."""
    import ray

    node_cpus = [node["Resources"].get("CPU", 0.0) for node in ray.nodes() if node.get("Alive")]
    largest, total = max(node_cpus, default=0.0), sum(node_cpus)
    per_worker = cfg.num_cpus_per_worker
    if per_worker > largest:
        raise UserError(f"executor.num_cpus_per_worker={per_worker:g}, but the largest node of the "
                        f"Ray cluster has {largest:g} CPUs; set executor.num_cpus_per_worker="
                        f"{largest:g} or less, or add bigger nodes")
    needed = cfg.workers * per_worker
    if needed > total + 1e-9:
        raise UserError(f"executor.workers={cfg.workers} x executor.num_cpus_per_worker="
                        f"{per_worker:g} needs {needed:g} CPUs, but the Ray cluster has "
                        f"{total:g}; lower either (fractions are allowed, e.g. "
                        f"executor.num_cpus_per_worker={math.floor(100 * total / cfg.workers) / 100:g})"
                        f" or add nodes")
    available = ray.available_resources().get("CPU", 0.0)
    if needed > available + 1e-9:
        log.warning("the Ray cluster has %g of its %g CPUs free, the workers need %g: some will "
                    "start only when other jobs free their CPUs", available, total, needed)
