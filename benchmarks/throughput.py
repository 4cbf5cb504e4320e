"""Throughput and memory of batched acting: env steps/s on Pendulum-v1 for ``algo.envs_per_worker``
B in {1, 4, 16, 64} x process workers in {1, 2}, for the 2x64 MLP (ff) and the LSTM, each also as
a share of the raw env's speed measured in the same run, and the peak RSS of a worker process.

``python -m benchmarks throughput`` runs the whole grid (minutes; run it on an otherwise idle
machine). ``python -m benchmarks.throughput ff 16 2 [total_steps]`` runs one case and prints its
row (a quick check).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import gymnasium as gym

from benchmarks.common import run_job, steady_steps_per_s

PENDULUM = ["env=pendulum", "algo.n_steps=10"]
NETWORKS = {"ff": ["network=ff", "network.hidden_sizes=[64,64]", "network.activation=tanh"],
            "lstm": ["network=lstm", "network.lstm_size=64", "network.pre_sizes=[64]"]}
ENVS_PER_WORKER = (1, 4, 16, 64)
WORKERS = (1, 2)
RSS_TARGET_MB = 300


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


def total_steps_for(network: str, envs: int, workers: int) -> int:
    """Budget of one case: long enough for a steady rate after start-up (about 10 s or more at
    the speeds seen on 2 cores), short enough that the grid takes minutes."""
    if envs == 1:
        return (60_000 if network == "lstm" else 150_000) * workers
    return (200_000 if network == "lstm" else 500_000) * workers


def measure_case(network: str, envs: int, workers: int, random_sps: float,
                 total_steps: int | None = None) -> dict[str, Any]:
    """One run with the process executor; its steady steps/s, its share of the raw env's speed
    on as many cores as workers, and peak RSS."""
    total = total_steps or total_steps_for(network, envs, workers)
    summary = run_job([*PENDULUM, *NETWORKS[network], "executor=process",
                       f"executor.workers={workers}", f"algo.envs_per_worker={envs}",
                       f"total_steps={total}"])
    sps = steady_steps_per_s(summary["run_dir"])
    cores = min(workers, os.cpu_count() or 1)
    return {"network": network, "envs_per_worker": envs, "workers": workers,
            "total_steps": total, "steps_per_s": round(sps),
            "steps_per_s_incl_startup": summary["steps_per_s"],
            "share_of_raw_env": round(sps / (random_sps * cores), 3),
            "peak_rss_main_mb": summary["peak_rss_main_mb"],
            "peak_rss_worker_mb": summary["peak_rss_worker_mb"]}


def measure(random_sps: float | None = None) -> list[dict[str, Any]]:
    """The whole grid; ``random_sps`` is the raw env's one-core steps/s (measured if None)."""
    random_sps = random_sps or random_env_steps_per_s()
    rows = []
    for network in NETWORKS:
        for workers in WORKERS:
            for envs in ENVS_PER_WORKER:
                rows.append(measure_case(network, envs, workers, random_sps))
                print(rows[-1], flush=True)
    return rows


def markdown(rows: list[dict[str, Any]], random_sps: float) -> str:
    lines = [f"Pendulum-v1, process executor, `algo.n_steps=10`; raw Pendulum-v1 with random "
             f"actions: {random_sps:,.0f} steps/s on one core. \"Share of raw\" = steady env "
             f"steps/s / (raw steps/s x workers): the part of the cores' env-stepping ceiling the "
             f"run reaches.\n",
             "| network | workers | envs per worker (B) | env steps/s (steady) | share of raw | "
             "incl. start-up | peak RSS per worker (MB) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        rss = r["peak_rss_worker_mb"]
        flag = "" if rss <= RSS_TARGET_MB else f" (over {RSS_TARGET_MB})"
        lines.append(f"| {r['network']} | {r['workers']} | {r['envs_per_worker']} | "
                     f"{r['steps_per_s']:,} | {r['share_of_raw_env']:.2f} | "
                     f"{r['steps_per_s_incl_startup']:,.0f} | {rss}{flag} |")
    by = {(r["network"], r["workers"], r["envs_per_worker"]): r["steps_per_s"] for r in rows}
    for network in NETWORKS:
        one, best = by.get((network, 2, 1)), max((v for (n, w, _), v in by.items()
                                                  if n == network and w == 2), default=None)
        if one and best:
            lines.append(f"\n{network}, 2 workers: best B is {best / one:.1f}x B=1.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    network, envs, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    total = int(sys.argv[4]) if len(sys.argv) > 4 else None
    raw = random_env_steps_per_s(steps=50_000)
    print({"random_env_steps_per_s": round(raw), **measure_case(network, envs, workers, raw, total)})
