"""Reference: Stable-Baselines3 A2C with the rl-zoo hyper-parameters, measured like rlplug's presets.

``python -m benchmarks.sb3_reference [pendulum] [cartpole]`` trains SB3's A2C on the same env
with rl-baselines3-zoo's tuned settings (hyperparams/a2c.yml) and records, for seeds 0, 1, 2, the
env steps and the wall time from the start of the process's job (imports included) until the mean
raw return of the last 100 episodes first reaches the target, as rlplug's time-to-target benchmark
does. SB3 is an optional benchmark dependency (``pip install 'rlplug[bench]'``), never a runtime
one. Each job runs in a fresh process so imports count and nothing is shared between seeds.

rl-zoo settings used (its a2c.yml, checked 2026-11):
  * Pendulum-v1: 8 envs, VecNormalize (observations and rewards), n_steps 8, gamma 0.9,
    gae_lambda 0.9, ent_coef 0, vf_coef 0.4, max_grad_norm 0.5, RMSprop, learning rate linear
    from 7e-4, gSDE with log_std_init -2, ortho_init off, no advantage normalisation; 1M steps.
  * CartPole-v1: 8 envs, ent_coef 0, SB3's A2C defaults otherwise (lr 7e-4, n_steps 5,
    gamma 0.99, RMSprop, max_grad_norm 0.5); 500k steps.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

SEEDS = (0, 1, 2)
# env preset -> (gymnasium id, target mean100, rl-zoo budget)
TASKS = {"pendulum": ("Pendulum-v1", -200.0, 1_000_000), "cartpole": ("CartPole-v1", 475.0, 500_000)}


def _linear(start: float) -> Any:
    return lambda progress_remaining: progress_remaining * start


def _zoo_model(env_id: str, seed: int) -> Any:
    from stable_baselines3 import A2C
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    env = make_vec_env(env_id, n_envs=8, seed=seed)  # Monitor wrappers: raw episode returns
    if env_id == "Pendulum-v1":
        env = VecNormalize(env, gamma=0.9)
        return A2C("MlpPolicy", env, seed=seed, ent_coef=0.0, max_grad_norm=0.5, n_steps=8,
                   gae_lambda=0.9, vf_coef=0.4, gamma=0.9, use_rms_prop=True,
                   normalize_advantage=False, learning_rate=_linear(7e-4), use_sde=True,
                   policy_kwargs={"log_std_init": -2, "ortho_init": False}, verbose=0)
    return A2C("MlpPolicy", env, seed=seed, ent_coef=0.0, verbose=0)


def job(env_id: str, seed: int, target: float, budget: int, started: float) -> dict[str, Any]:
    """One SB3 run until the target or the budget; ``started`` is the job's launch time."""
    from collections import deque

    from stable_baselines3.common.callbacks import BaseCallback

    returns: deque[float] = deque(maxlen=100)
    reached: dict[str, Any] = {}

    class UntilTarget(BaseCallback):
        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    returns.append(float(info["episode"]["r"]))
            if len(returns) == 100 and sum(returns) / 100 >= target and not reached:
                reached.update(steps=int(self.num_timesteps),
                               wall_s=round(time.time() - started, 1))
                return False
            return True

    model = _zoo_model(env_id, seed)
    model.learn(total_timesteps=budget, callback=UntilTarget())
    return {"env_id": env_id, "seed": seed, "target": target, "budget_steps": budget,
            "reached_at_steps": reached.get("steps"), "reached_at_wall_s": reached.get("wall_s"),
            "return_mean100_final": sum(returns) / len(returns) if returns else None,
            "steps_done": int(model.num_timesteps), "wall_s": round(time.time() - started, 1)}


def measure(tasks: list[str] | None = None) -> list[dict[str, Any]]:
    """Every (task, seed) in a fresh process; the wall time counts from that process's launch."""
    rows = []
    for name in tasks or list(TASKS):
        env_id, target, budget = TASKS[name]
        for seed in SEEDS:
            started = time.time()
            code = (f"import json, benchmarks.sb3_reference as r; print(json.dumps(r.job("
                    f"{env_id!r}, {seed}, {target}, {budget}, {started})))")
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True)
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row["preset"] = name
            rows.append(row)
            print(row, flush=True)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| SB3 A2C (rl-zoo) | seed | target | reached at env steps | wall s (from launch) | "
             "mean100 at stop |", "|---|---|---|---|---|---|"]
    for r in rows:
        reached = (f"{r['reached_at_steps']:,}" if r["reached_at_steps"]
                   else f"not within {r['budget_steps']:,}")
        final = "-" if r["return_mean100_final"] is None else f"{r['return_mean100_final']:.1f}"
        lines.append(f"| {r['env_id']} | {r['seed']} | {r['target']:g} | {reached} | "
                     f"{r['reached_at_wall_s'] or '-'} | {final} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from benchmarks.common import write_results

    results = measure(sys.argv[1:] or None)
    write_results("sb3_reference", markdown(results), results)
