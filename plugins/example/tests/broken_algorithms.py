"""Algorithms that each break one duty of the Algorithm contract, for the tests of
``rlplug.testing.check_algorithm``. A module of its own, importable by name, because the check
sends the algorithm to a spawned process."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from rlplug.contracts import Actor, WorkerContext
from rlplug_example.algorithm import Reinforce, ReinforceActor
from rlplug_example.shared_model import SharedAdamModel


class _IntVersionModel(SharedAdamModel):
    """Counts its updates in a Python int: a worker process increments only its own copy."""

    def __init__(self, params: torch.Tensor) -> None:
        super().__init__(params)
        self.count = 0

    @property
    def version(self) -> int:
        return self.count

    def pull(self, out: torch.Tensor) -> int:
        super().pull(out)
        return self.count

    def push(self, grad: torch.Tensor, lr: float) -> int:
        super().push(grad, lr)
        self.count += 1
        return self.count

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "steps": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.count = int(state["steps"])


class NotSharedModel(Reinforce):
    """Part of its model's state (the version) is not in shared memory."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._model = _IntVersionModel(self._model.params)


class _ForgetsVersion(SharedAdamModel):
    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict({**state, "steps": self.version})


class LoadKeepsVersion(Reinforce):
    """load_state_dict restores the parameters but not the update count."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        old = self._model
        self._model = _ForgetsVersion(old.params)


class OverBudget(Reinforce):
    """Reserves against a larger budget than the run's."""

    def run_worker(self, ctx: WorkerContext) -> None:
        super().run_worker(dataclasses.replace(ctx, total_steps=ctx.total_steps + 100))


class _KeepsReservations:
    def __init__(self, counters: Any) -> None:
        self.counters = counters

    def __getattr__(self, name: str) -> Any:
        return getattr(self.counters, name)

    def release_steps(self, unused: int) -> None:
        pass  # the unused reserved steps are lost to the run


class NoRelease(Reinforce):
    """Never gives back reserved steps it did not take."""

    def run_worker(self, ctx: WorkerContext) -> None:
        super().run_worker(dataclasses.replace(ctx, counters=_KeepsReservations(ctx.counters)))


class WrongRank(Reinforce):
    """Sends every message as worker 0."""

    def run_worker(self, ctx: WorkerContext) -> None:
        send = ctx.send
        super().run_worker(dataclasses.replace(ctx, send=lambda msg: send({**msg, "worker": 0})))


class NoPush(Reinforce):
    """Computes its updates but never pushes them to ctx.model."""

    def run_worker(self, ctx: WorkerContext) -> None:
        model = ctx.model

        class Dropped:
            def __getattr__(self, name: str) -> Any:
                return getattr(model, name)

            def push(self, grad: torch.Tensor, lr: float) -> int:
                return model.version

        super().run_worker(dataclasses.replace(ctx, model=Dropped()))


class _TensorActor(ReinforceActor):
    def act(self, obs: Any) -> Any:
        return torch.tensor(super().act(obs))


class ActionsAsTensors(Reinforce):
    """Its actor returns torch tensors, which are not actions of a gymnasium space."""

    def actor(self, deterministic: bool = True) -> Actor:
        return _TensorActor(self, deterministic)


class _ForgetfulActor(ReinforceActor):
    def reset(self) -> None:
        if not hasattr(self, "state"):
            super().reset()
        self.start = torch.zeros(1, 1)  # keeps the last episode's recurrent state


class ResetKeepsState(Reinforce):
    """Its actor's reset() does not forget the previous episode's recurrent state."""

    def actor(self, deterministic: bool = True) -> Actor:
        return _ForgetfulActor(self, deterministic)


class ConfigInCheckpoint(Reinforce):
    """Puts its config dataclass into state_dict (not loadable with weights_only=True)."""

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "cfg": self.cfg}


class Unpicklable(Reinforce):
    """Holds a lambda, which cannot be sent to a worker process."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.schedule = lambda step: 1.0
