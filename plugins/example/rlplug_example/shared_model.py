"""The REINFORCE algorithm's SharedModel: flat parameters and Adam's moments in shared memory.

Every worker (thread or process) pulls the parameters from and pushes its gradients to the same
tensors; a push is one Adam step under a lock, so concurrent pushes never interleave.
"""

from __future__ import annotations

from typing import Any

import torch

from rlplug.contracts import SharedModel
from rlplug.locks import RobustLock


class SharedAdamModel(SharedModel):
    """``params`` (flat float32) stepped by Adam; ``version`` is the number of steps taken."""

    def __init__(self, params: torch.Tensor, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.params = params.detach().clone().share_memory_()
        self.exp_avg = torch.zeros_like(self.params).share_memory_()
        self.exp_avg_sq = torch.zeros_like(self.params).share_memory_()
        self.steps = torch.zeros((), dtype=torch.int64).share_memory_()
        self.betas, self.eps = betas, eps
        # pickles to worker processes; a worker killed while holding it does not block the others
        self.lock = RobustLock()

    @property
    def num_parameters(self) -> int:
        return self.params.numel()

    @property
    def version(self) -> int:
        return int(self.steps)

    def pull(self, out: torch.Tensor) -> int:
        with self.lock:  # never half an update
            out.copy_(self.params)
            return int(self.steps)

    def push(self, grad: torch.Tensor, lr: float) -> int:
        beta1, beta2 = self.betas
        with self.lock:
            self.steps += 1
            t = int(self.steps)
            self.exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
            self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (self.exp_avg_sq / (1 - beta2 ** t)).sqrt_().add_(self.eps)
            self.params.addcdiv_(self.exp_avg, denom, value=-lr / (1 - beta1 ** t))
            return t

    def state_dict(self) -> dict[str, Any]:
        with self.lock:
            return {"params": self.params.clone(), "exp_avg": self.exp_avg.clone(),
                    "exp_avg_sq": self.exp_avg_sq.clone(), "steps": int(self.steps)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if tuple(state["params"].shape) != tuple(self.params.shape):
            raise ValueError(f"the saved model has {tuple(state['params'].shape)} parameters, "
                             f"this one {tuple(self.params.shape)}")
        with self.lock:  # in place: the shared storage stays shared
            self.params.copy_(state["params"])
            self.exp_avg.copy_(state["exp_avg"])
            self.exp_avg_sq.copy_(state["exp_avg_sq"])
            self.steps.fill_(int(state["steps"]))
