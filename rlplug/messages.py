"""The messages workers send to the main process (small dicts, cheap to pickle).

Every message has ``kind`` and ``worker``. Algorithms build them with these functions so the main
process (progress bar, metrics.jsonl, W&B) can rely on their keys.
"""

from __future__ import annotations

from typing import Any

EPISODE = "episode"
TRAIN = "train"
WORKER_RESTART = "worker_restart"


def episode(worker: int, env_step: int, episode_return: float, length: int,
            success: bool | None = None) -> dict[str, Any]:
    """A finished episode: its undiscounted return (raw env rewards) and length, and whether it
    succeeded when the env says so (``info["is_success"]`` of its last step, the gymnasium
    convention; None: the env does not report success, and the row has no ``success`` key)."""
    row = {"kind": EPISODE, "worker": worker, "env_step": env_step,
           "return": float(episode_return), "length": int(length)}
    if success is not None:
        row["success"] = bool(success)
    return row


def train(worker: int, env_step: int, **stats: float) -> dict[str, Any]:
    """Training statistics averaged since the worker's last ``train`` message, e.g.
    ``policy_loss``, ``value_loss``, ``entropy``, ``grad_norm``, ``lr``, ``steps_per_s``."""
    return {"kind": TRAIN, "worker": worker, "env_step": env_step,
            **{k: float(v) for k, v in stats.items()}}


def worker_restart(worker: int, restart: int, env_step: int, released_steps: int, reason: str,
                   traceback: str) -> dict[str, Any]:
    """A failed worker replaced by a fresh one (the executor sends it, not the worker):
    ``restart`` counts the run's restarts so far, ``released_steps`` are the env steps the failed
    worker had reserved and that went back to the budget, ``reason`` is the exception's line and
    ``traceback`` the worker's whole traceback."""
    return {"kind": WORKER_RESTART, "worker": worker, "restart": int(restart),
            "env_step": int(env_step), "released_steps": int(released_steps), "reason": reason,
            "traceback": traceback}
