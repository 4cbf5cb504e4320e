"""Workers as processes (torch.multiprocessing); the algorithm's shared tensors (global model,
optimizer statistics) live in shared memory, so every process updates the same numbers."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import torch
import torch.multiprocessing as mp

from rlplug.contracts import WorkerContext
from rlplug_a3c.configs import ProcessExecutorConfig
from rlplug_a3c.executors.pool import WorkerPool, run_target


def _process_main(target: Callable[[WorkerContext], None], ctx: WorkerContext) -> None:
    # The main process decides how to stop (Ctrl-C reaches the whole process group).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One intra-op thread per worker: more would oversubscribe the cores (pitfall 3).
    torch.set_num_threads(1)
    run_target(target, ctx)


class ProcessExecutor(WorkerPool):
    """Scales across cores. Uses the ``spawn`` start method by default: safe inside Hydra's
    joblib launcher and with threads already running in the parent."""

    def __init__(self, cfg: ProcessExecutorConfig):
        super().__init__(cfg)
        self._mp = mp.get_context(cfg.start_method)

    def _channel(self) -> tuple[Any, Any]:
        return self._mp.Event(), self._mp.Queue()

    def _start(self, target: Callable[[WorkerContext], None], ctx: WorkerContext) -> Any:
        process = self._mp.Process(target=_process_main, args=(target, ctx),
                                   name=f"rlplug-worker-{ctx.rank}", daemon=True)
        process.start()
        return process

    def _alive(self, handle: Any) -> bool:
        return handle.is_alive()

    def _death(self, handle: Any) -> str | None:
        handle.join(timeout=0.1)
        code = handle.exitcode
        if code is None or code == 0:
            return None
        if code < 0:
            return f"worker process {handle.pid} was killed by signal {signal.Signals(-code).name}"
        return f"worker process {handle.pid} exited with code {code}"

    def _force_stop(self, handle: Any) -> None:
        handle.terminate()
        handle.join(timeout=2.0)
        if handle.is_alive():
            handle.kill()
            handle.join(timeout=2.0)
