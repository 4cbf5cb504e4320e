"""Optimizers whose statistics live in shared memory, stepped by every worker (Hogwild-style).

They work on one flat parameter tensor and one flat gradient tensor (see ``flat_params.py``), so
a step is a handful of tensor ops whatever the number of layers. The step count is a shared
tensor too, so Adam's bias correction is right in every process (pitfall 2 in the A3C anchors).

Each step holds a lock shared by all workers (a few tens of microseconds, against about a
millisecond of acting and backward per update, so workers still compute their gradients fully
asynchronously). Without it, concurrent steps interleave their reads and writes of the moments:
a worker can read a first moment that already holds another worker's gradient with a second
moment that does not yet hold its square. For a parameter whose second moment is still about 0
(a unit that has just received its first gradient), ``m / (sqrt(v) + eps)`` then explodes; we saw
this throw the critic off course early in about one Pendulum run in five with 2 workers.

The lock is a :class:`rlplug.locks.RobustLock`: a worker killed inside a step (SIGKILL, the OOM
killer, the pool's watchdog) releases it with its death instead of blocking every other worker for
ever. That step itself may be left half-applied (e.g. the moments updated, the parameters not):
one torn update among thousands, which the following steps absorb as they absorb a stale gradient.
"""

from __future__ import annotations

import torch

from rlplug.locks import RobustLock


class SharedOptimizer:
    """Base: holds the shared state tensors; ``step(grad, lr)`` updates ``params`` in place."""

    kind = ""

    def __init__(self, params: torch.Tensor, eps: float, state_names: tuple[str, ...],
                 lr_scale: torch.Tensor | None):
        self.params = params
        self.eps = eps
        self.lr_scale = lr_scale  # optional per-parameter learning-rate factors (flat)
        self._lock = RobustLock()  # travels to spawned workers; a killed holder releases it
        self.state = {"step": torch.zeros((), dtype=torch.float64).share_memory_()}
        for name in state_names:
            self.state[name] = torch.zeros_like(params).share_memory_()

    @property
    def step_count(self) -> int:
        return int(self.state["step"].item())

    def step(self, grad: torch.Tensor, lr: float) -> int:
        """Apply one worker's (flat) gradient to the shared parameters, atomically; returns the
        step count after this step."""
        with self._lock:
            self.state["step"] += 1
            t = self.state["step"].item()
            self._update(grad, lr, t)
        return int(t)

    def _update(self, grad: torch.Tensor, lr: float, t: float) -> None:
        raise NotImplementedError

    def _scaled(self, update: torch.Tensor) -> torch.Tensor:
        return update if self.lr_scale is None else update * self.lr_scale

    def state_dict(self) -> dict[str, object]:
        return {"kind": self.kind, **{k: v.clone() for k, v in self.state.items()}}

    def load_state_dict(self, state: dict[str, object]) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"optimizer state is for {state.get('kind')!r}, not {self.kind!r}")
        for name, tensor in self.state.items():
            tensor.copy_(state[name])  # in place: the shared storage stays shared


class SharedAdam(SharedOptimizer):
    kind = "adam"

    def __init__(self, params: torch.Tensor, betas: tuple[float, float], eps: float,
                 lr_scale: torch.Tensor | None = None):
        super().__init__(params, eps, ("exp_avg", "exp_avg_sq"), lr_scale)
        self.beta1, self.beta2 = betas

    def _update(self, grad: torch.Tensor, lr: float, t: float) -> None:
        exp_avg, exp_avg_sq = self.state["exp_avg"], self.state["exp_avg_sq"]
        exp_avg.mul_(self.beta1).add_(grad, alpha=1 - self.beta1)
        exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        bias1 = 1 - self.beta1 ** t
        bias2 = 1 - self.beta2 ** t
        denom = (exp_avg_sq / bias2).sqrt_().add_(self.eps)
        self.params.addcdiv_(self._scaled(exp_avg), denom, value=-lr / bias1)


class SharedRMSprop(SharedOptimizer):
    kind = "rmsprop"

    def __init__(self, params: torch.Tensor, alpha: float, eps: float,
                 lr_scale: torch.Tensor | None = None):
        super().__init__(params, eps, ("square_avg",), lr_scale)
        self.alpha = alpha

    def _update(self, grad: torch.Tensor, lr: float, t: float) -> None:
        square_avg = self.state["square_avg"]
        square_avg.mul_(self.alpha).addcmul_(grad, grad, value=1 - self.alpha)
        self.params.addcdiv_(self._scaled(grad), square_avg.sqrt().add_(self.eps), value=-lr)

