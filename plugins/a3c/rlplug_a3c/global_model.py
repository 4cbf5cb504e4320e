"""A3C's shared model: the global network's parameters as one flat tensor in shared memory and
the shared optimizer that applies every worker's gradient to them.

This is the :class:`rlplug.contracts.SharedModel` the A3C workers push to and pull from. The
thread and process executors hand it to workers as it is (its tensors are in shared memory); a
distributed executor hosts it behind a remote boundary and hands them a proxy.
"""

from __future__ import annotations

from typing import Any

import torch

from rlplug.contracts import SharedModel
from rlplug_a3c.shared_optim import SharedOptimizer


class GlobalModel(SharedModel):
    """``params`` (flat, shared memory) and the optimizer that steps them; ``version`` is the
    optimizer's shared step count."""

    def __init__(self, params: torch.Tensor, optimizer: SharedOptimizer):
        self.params = params
        self.optimizer = optimizer

    @property
    def num_parameters(self) -> int:
        return self.params.numel()

    @property
    def version(self) -> int:
        return self.optimizer.step_count

    def pull(self, out: torch.Tensor) -> int:
        version = self.optimizer.step_count  # read first: the parameters are at least this new
        out.copy_(self.params)
        return version

    def push(self, grad: torch.Tensor, lr: float) -> int:
        return self.optimizer.step(grad, lr)

    def state_dict(self) -> dict[str, Any]:
        return {"params": self.params.clone(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        params = state["params"]
        if not isinstance(params, torch.Tensor) or params.shape != self.params.shape:
            shape = tuple(params.shape) if isinstance(params, torch.Tensor) else type(params).__name__
            raise ValueError(f"the saved model has {shape} parameters, this one "
                             f"{tuple(self.params.shape)}")
        self.params.copy_(params)  # in place: the shared storage stays shared
        self.optimizer.load_state_dict(state["optimizer"])
