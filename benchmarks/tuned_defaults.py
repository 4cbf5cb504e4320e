"""The main commands with their tuned defaults: ``python -m rlplug algo=a3c env=<env>
executor=process`` for pendulum, cartpole and acrobot, three seeds each.

``python -m benchmarks.tuned_defaults [--envs pendulum cartpole acrobot] [--seeds 0 1 2]`` runs
each command in a fresh process, one after another, everything as shipped (W&B offline,
evaluation during training on), and records per seed:

* the mean return of the last 100 training episodes at the end (the target: >= -200 on
  Pendulum, >= 475 on CartPole, >= -100 on Acrobot);
* the kept policy (``checkpoint_best.pt``): its evaluation return during training
  (``eval_return_best``; >= -170 on Pendulum) and its return on 100 fresh episodes (env seeds
  1000-1099, never used to choose it, through ``python -m rlplug.evaluate``);
* the env steps and the wall time from the command's launch until the mean of the last 100
  episodes first reached the target, and the command's whole wall time.

Writes benchmarks/results/tuned_defaults.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

from benchmarks.common import ROOT, fmt, rows_per_run, run_command, write_results

TARGETS = {"pendulum": -200.0, "cartpole": 475.0, "acrobot": -100.0}
KEPT_TARGETS = {"pendulum": -170.0}  # the kept policy's evaluation return
SEEDS = (0, 1, 2)
FRESH_EPISODES, FRESH_SEED = 100, 1000


def fresh_evaluation(run_dir: Path) -> float:
    """The kept policy (checkpoint_best.pt) on episodes not used to choose it."""
    cmd = [sys.executable, "-m", "rlplug.evaluate", str(run_dir), f"episodes={FRESH_EPISODES}",
           f"seed={FRESH_SEED}"]
    subprocess.run(cmd, cwd=run_dir, capture_output=True, text=True, check=True)
    report = json.loads((run_dir / "eval.json").read_text())
    assert report["checkpoint"].endswith("checkpoint_best.pt"), report["checkpoint"]
    return float(report["return_mean"])


def measure(envs: list[str], seeds: list[int]) -> list[dict[str, Any]]:
    def one_row(env: str, seed: int, run_dir: Path) -> dict[str, Any]:
        overrides = ["algo=a3c", f"env={env}", "executor=process", f"seed={seed}"]
        job = run_command(overrides, run_dir, target=TARGETS[env])
        summary = job["summary"]
        best = summary.get("eval_return_best")
        return {"env": env, "seed": seed, "command": " ".join(overrides[:3]),
                "target": TARGETS[env], "total_steps": summary["env_steps"],
                "return_mean100_final": summary["return_mean100_final"],
                "eval_return_best": best,
                "eval_return_final": summary.get("eval_return_final"),
                "kept_fresh_return": fresh_evaluation(run_dir) if best is not None else None,
                "reached_at_steps": job["reached_at_steps"],
                "reached_at_s": job["reached_at_s"],
                "startup_s": job["startup_s"], "command_s": job["command_s"],
                "steps_per_s": summary["steps_per_s"]}

    return rows_per_run(envs, seeds, one_row)


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| command | seed | mean100 at the end | target | kept policy: eval return "
             "(100 fresh episodes) | target reached at env steps | ... at s from launch | "
             "command s | env steps/s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        reached = f"{r['reached_at_steps']:,}" if r["reached_at_steps"] else "not reached"
        kept = ("-" if r["eval_return_best"] is None else
                f"{r['eval_return_best']:.1f} ({fmt(r['kept_fresh_return'])})")
        lines.append(f"| `{r['command']}` | {r['seed']} | {fmt(r['return_mean100_final'])} | "
                     f"{r['target']:g} | {kept} | {reached} | {fmt(r['reached_at_s'])} | "
                     f"{r['command_s']:.1f} | {r['steps_per_s']:,.0f} |")
    lines.append("")
    for env in dict.fromkeys(r["env"] for r in rows):
        group = [r for r in rows if r["env"] == env]
        ok = sum(r["return_mean100_final"] is not None
                 and r["return_mean100_final"] >= r["target"] for r in group)
        line = (f"- `env={env}`: mean100 at the end >= {TARGETS[env]:g} in {ok}/{len(group)} "
                f"seeds; median command time {median(r['command_s'] for r in group):.1f} s")
        if env in KEPT_TARGETS:
            kept = sum(r["eval_return_best"] is not None
                       and r["eval_return_best"] >= KEPT_TARGETS[env] for r in group)
            line += (f"; kept policy's eval return >= {KEPT_TARGETS[env]:g} in "
                     f"{kept}/{len(group)}")
        lines.append(line)
    return "\n".join(lines) + "\n"


def header() -> str:
    return (f"_Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} "
            f"cores, process executor with 2 workers, W&B offline; wall times from each "
            f"command's launch; `python -m benchmarks defaults`._\n\n")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tuned_defaults")
    parser.add_argument("--envs", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    args = parser.parse_args(argv)
    rows = measure(args.envs, args.seeds)
    write_results("tuned_defaults", header() + markdown(rows), rows)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main(sys.argv[1:])
