"""Throughput and memory: env steps/s for each executor and worker count on Pendulum-v1 with a
2x64 MLP (and the LSTM), the raw env's random-action steps/s, and peak RSS per process."""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym

from benchmarks.common import run_job, steady_steps_per_s

PENDULUM = ["env=pendulum", "network=ff", "network.hidden_sizes=[64,64]", "algo.n_steps=10"]


def random_env_steps_per_s(env_id: str = "Pendulum-v1", steps: int = 200_000) -> float:
    """Steps/s of the bare gymnasium env with random actions on one core (the ceiling)."""
    env = gym.make(env_id)
    env.reset(seed=0)
    actions = [env.action_space.sample() for _ in range(1000)]
    start = time.perf_counter()
    for i in range(steps):
        _, _, terminated, truncated, _ = env.step(actions[i % 1000])
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def measure(total_steps: int = 300_000) -> list[dict[str, Any]]:
    rows = []
    cases = [(ex, w, "ff") for ex in ("thread", "process") for w in (1, 2, 4)]
    cases += [("process", 2, "lstm")]
    for executor, workers, network in cases:
        overrides = [*PENDULUM, f"executor={executor}", f"executor.workers={workers}",
                     f"total_steps={total_steps}"]
        if network == "lstm":
            overrides = [o for o in overrides if not o.startswith("network")] + ["network=lstm"]
        summary = run_job(overrides)
        rows.append({"executor": executor, "workers": workers, "network": network,
                     "steps_per_s": round(steady_steps_per_s(summary["run_dir"])),
                     "steps_per_s_incl_startup": summary["steps_per_s"],
                     "peak_rss_main_mb": summary["peak_rss_main_mb"],
                     "peak_rss_worker_mb": summary["peak_rss_worker_mb"]})
        print(rows[-1], flush=True)
    return rows


def markdown(rows: list[dict[str, Any]], random_sps: float) -> str:
    lines = ["| executor | workers | network | env steps/s (steady) | incl. start-up | "
             "peak RSS main (MB) | peak RSS per worker (MB) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        worker_rss = "-" if r["executor"] == "thread" else r["peak_rss_worker_mb"]
        lines.append(f"| {r['executor']} | {r['workers']} | {r['network']} | "
                     f"{r['steps_per_s']:,} | {r['steps_per_s_incl_startup']:,.0f} | "
                     f"{r['peak_rss_main_mb']} | {worker_rss} |")
    lines.append(f"\nRaw Pendulum-v1 with random actions, one core: {random_sps:,.0f} steps/s.")
    by = {(r["executor"], r["workers"], r["network"]): r["steps_per_s"] for r in rows}
    if all(k in by for k in [("process", 1, "ff"), ("process", 2, "ff"), ("thread", 2, "ff")]):
        lines.append(f"Scaling: process 2 workers / 1 worker = "
                     f"{by[('process', 2, 'ff')] / by[('process', 1, 'ff')]:.2f}x; "
                     f"process / thread at 2 workers = "
                     f"{by[('process', 2, 'ff')] / by[('thread', 2, 'ff')]:.2f}x.")
    return "\n".join(lines) + "\n"
