"""One rlplug worker as a Ray actor, on any node of the cluster."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from functools import partial

import torch

from rlplug.contracts import WorkerContext
from rlplug.workerpool import run_target
from rlplug_ray import portable
from rlplug_ray.hub import WorkerId
from rlplug_ray.link import HostedModel, HubLink

WORKER_START = "worker_start"
"""The message a Ray worker sends first: where it runs (``node``, ``host``, ``ip``, ``pid``)."""


def _load_and_run(target: bytes, ctx: WorkerContext) -> None:
    # Unpickled inside run_target, so a node that cannot import the target reports it as the
    # worker's error (with its traceback) like any other.
    function: Callable[[WorkerContext], None] = portable.loads(target)
    function(ctx)


class RayWorker:
    """Runs one worker function to its end (wrapped with ``ray.remote`` by the executor).

    Its process belongs to Ray (its own process group: a Ctrl-C in the terminal reaches only the
    driver, which then stops the workers through the hub's stop flag). When ``run`` returns,
    every message and step it produced is in the hub.
    """

    def run(self, target: bytes, model: HostedModel, worker: WorkerId, seed: int,
            total_steps: int, report_every_s: float) -> None:
        import ray

        torch.set_num_threads(1)  # one intra-op thread per worker, as on one machine
        rank = worker[0]
        link = HubLink(model, worker)
        context = ray.get_runtime_context()
        link.send({"kind": WORKER_START, "worker": rank, "node": context.get_node_id(),
                   "host": socket.gethostname(), "ip": ray.util.get_node_ip_address(),
                   "pid": os.getpid()})
        ctx = WorkerContext(rank, seed, link, link.model, total_steps, link.send,
                            link.stop_requested, report_every_s)
        run_target(partial(_load_and_run, target), ctx)
        link.flush()
