"""``executor=ray`` next to ``executor=process`` on one machine, in the same benchmark run:
Pendulum-v1, 2x64 MLP, 2 workers, for ``algo.envs_per_worker`` B in {1, 16} (B=1 is the worst
case for Ray: an update, and so a remote call, every ``algo.n_steps`` env steps). For each: steady
env steps/s, Ray's share of the process executor's, the mean gradient staleness (global updates
between a worker's pull and its push) and the time from the command to the first env step.

The cases alternate between the executors (``repeats`` rounds), so a machine that gets busier
during the benchmark costs both alike. ``python -m benchmarks ray`` writes
benchmarks/results/ray_throughput.{md,json}; ``python -m benchmarks.ray_throughput [B] [steps]``
runs one pair and prints it (a quick check).

The time to the first env step comes from the env itself: ``TimedPendulum-v1`` is Pendulum-v1
that records the wall-clock time of its first step in a file (``env.kwargs.record_dir``).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym

from benchmarks.common import run_job, steady_steps_per_s

ENV_ID = "TimedPendulum-v1"
PENDULUM = ["env=pendulum", f"env.id=benchmarks.ray_throughput:{ENV_ID}", "algo.n_steps=10",
            "network=ff", "network.hidden_sizes=[64,64]", "network.activation=tanh",
            "executor.workers=2"]
EXECUTORS = ("process", "ray")
ENVS_PER_WORKER = (1, 16)
TARGET_SHARE = 0.6  # Ray at least 60% of the process executor's throughput on one machine


class FirstStepRecorder(gym.Wrapper):
    """Writes the wall-clock time of the env's first step to a new file in ``record_dir``."""

    def __init__(self, env: gym.Env, record_dir: str):
        super().__init__(env)
        self.record_dir = Path(record_dir)
        self._recorded = False

    def step(self, action: Any) -> Any:
        if not self._recorded:
            self._recorded = True
            stamp = time.time()
            path = Path(tempfile.mkstemp(dir=self.record_dir, suffix=".t")[1])
            path.write_text(repr(stamp))
        return self.env.step(action)


def make_timed_pendulum(record_dir: str, **kwargs: Any) -> gym.Env:
    return FirstStepRecorder(gym.make("Pendulum-v1", **kwargs), record_dir)


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=make_timed_pendulum)


def mean_staleness(rows: list[dict[str, Any]]) -> float:
    """Mean over all updates of the workers' reported staleness (train rows average it)."""
    train = [r for r in rows if r.get("kind") == "train" and "staleness" in r]
    updates = sum(r["updates"] for r in train)
    return sum(r["staleness"] * r["updates"] for r in train) / max(updates, 1)


def measure_case(executor: str, envs: int, total_steps: int) -> dict[str, Any]:
    """One run; its steady env steps/s, mean staleness and time from command to first step."""
    record_dir = Path(tempfile.mkdtemp(prefix="rlplug-bench-first-step-"))
    load = os.getloadavg()[0]  # other work on the machine slows a case down
    launched = time.time()
    summary = run_job([*PENDULUM, f"executor={executor}", f"algo.envs_per_worker={envs}",
                       f"total_steps={total_steps}", f"+env.kwargs.record_dir={record_dir}"])
    stamps = [float(p.read_text()) for p in record_dir.glob("*.t")]
    metrics = Path(summary["run_dir"]) / "metrics.jsonl"
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    return {"executor": executor, "envs_per_worker": envs, "total_steps": total_steps,
            "steps_per_s": round(steady_steps_per_s(summary["run_dir"])),
            "steps_per_s_incl_startup": summary["steps_per_s"],
            "mean_staleness": round(mean_staleness(rows), 3),
            "first_env_step_s": round(min(stamps) - launched, 2) if stamps else None,
            "load_avg_1min": round(load, 1)}


def measure(total_steps: int = 300_000, repeats: int = 2,
            envs_per_worker: tuple[int, ...] = ENVS_PER_WORKER) -> list[dict[str, Any]]:
    rows = []
    for _ in range(repeats):
        for envs in envs_per_worker:
            for executor in EXECUTORS:
                rows.append(measure_case(executor, envs, total_steps))
                print(rows[-1], flush=True)
    return rows


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per B and executor: medians over the repeats, and Ray's share of the process executor."""
    out = []
    for envs in sorted({r["envs_per_worker"] for r in rows}):
        medians = {}
        for executor in EXECUTORS:
            mine = [r for r in rows if r["envs_per_worker"] == envs and r["executor"] == executor]
            medians[executor] = {key: statistics.median(r[key] for r in mine)
                                 for key in ("steps_per_s", "mean_staleness", "first_env_step_s")
                                 if all(r[key] is not None for r in mine)}
            medians[executor]["runs"] = len(mine)
        share = medians["ray"]["steps_per_s"] / max(medians["process"]["steps_per_s"], 1e-9)
        out.append({"envs_per_worker": envs, **{f"{ex}_{k}": v for ex, m in medians.items()
                                                 for k, v in m.items()},
                    "ray_share": round(share, 3)})
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| B (envs per worker) | executor | env steps/s (steady, median) | mean staleness | "
             "command to first env step (s) |", "|---|---|---|---|---|"]
    summary = summarize(rows)
    for s in summary:
        for executor in EXECUTORS:
            lines.append(f"| {s['envs_per_worker']} | {executor} | "
                         f"{s[f'{executor}_steps_per_s']:,.0f} | "
                         f"{s[f'{executor}_mean_staleness']:.2f} | "
                         f"{s.get(f'{executor}_first_env_step_s', float('nan')):.1f} |")
    lines.append("")
    for s in summary:
        verdict = "met" if s["ray_share"] >= TARGET_SHARE else "NOT met"
        lines.append(f"B={s['envs_per_worker']}: Ray reaches {s['ray_share']:.0%} of the process "
                     f"executor's env steps/s (target {TARGET_SHARE:.0%}: {verdict}).")
    cases = {(r["executor"], r["envs_per_worker"]) for r in rows}
    loads = [r["load_avg_1min"] for r in rows]
    lines.append(f"\nPendulum-v1, 2x64 tanh MLP, algo.n_steps=10, 2 workers, "
                 f"{rows[0]['total_steps']:,} env steps per run, {len(rows) // len(cases)} runs "
                 f"per executor and B, alternating; executor=ray with a local Ray instance "
                 f"(executor.address=null), whose start-up is part of the time to the first step. "
                 f"Load average (1 min) at the start of the runs: {min(loads)}-{max(loads)} "
                 f"on {os.cpu_count()} cores.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    args = sys.argv[1:]
    envs = int(args[0]) if args else 16
    steps = int(args[1]) if len(args) > 1 else 200_000
    pair = measure(steps, repeats=1, envs_per_worker=(envs,))
    print(markdown(pair))
    print(json.dumps(summarize(pair), indent=2))
