"""Time to target: the study presets ``experiment=pendulum`` and ``experiment=cartpole`` next to
Stable-Baselines3's A2C with the rl-zoo hyper-parameters, measured the same way in the same run.

For seeds 0, 1, 2, each job in a fresh process, one after another on the same cores: the env
steps and the wall time **from the command's launch** (imports, W&B start-up and spawning the
workers included) until the mean raw return of the last 100 episodes first reaches the target
(-200 on Pendulum-v1, 475 on CartPole-v1). rlplug runs ``python -m rlplug experiment=<preset>
seed=<seed>`` as shipped (W&B offline); SB3 runs come from :mod:`benchmarks.sb3_reference` (the
``bench`` extra; skipped with a note when SB3 is not installed). One table holds both.

``python -m benchmarks learning`` writes benchmarks/results/learning.{md,json} and
learning_curves.png (rlplug's runs).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from benchmarks import sb3_reference
from benchmarks.common import RESULTS, episodes, fmt, rows_per_run, run_command

TARGETS = {"pendulum": -200.0, "cartpole": 475.0}
WALL_GOALS_S = {"pendulum": 10.0, "cartpole": 5.0}  # median time to target from the launch
SEEDS = (0, 1, 2)


def measure_rlplug(presets: list[str], seeds: tuple[int, ...] = SEEDS) -> list[dict[str, Any]]:
    """``python -m rlplug experiment=<preset> seed=<seed>``; each row keeps the run's episode
    returns (``curve``, for the plot)."""
    def one_row(preset: str, seed: int, run_dir: Path) -> dict[str, Any]:
        job = run_command([f"experiment={preset}", f"seed={seed}"], run_dir,
                          target=TARGETS[preset])
        summary = job["summary"]
        return {"system": "rlplug A3C", "task": preset, "seed": seed,
                "command": f"experiment={preset}", "target": TARGETS[preset],
                "budget_steps": summary["env_steps"],
                "reached_at_steps": job["reached_at_steps"],
                "reached_at_s": job["reached_at_s"], "startup_s": job["startup_s"],
                "return_mean100_final": summary["return_mean100_final"],
                "steps_per_s": summary["steps_per_s"],
                "curve": [[e["env_step"], e["return"]] for e in episodes(run_dir)]}

    return rows_per_run(presets, seeds, one_row, hide=("curve",))


def measure_sb3(presets: list[str]) -> list[dict[str, Any]]:
    rows = []
    for r in sb3_reference.measure(presets):
        rows.append({"system": "SB3 A2C (rl-zoo)", "task": r["preset"], "seed": r["seed"],
                     "command": "rl-zoo a2c.yml", "target": r["target"],
                     "budget_steps": r["budget_steps"], "reached_at_steps": r["reached_at_steps"],
                     "reached_at_s": r["reached_at_wall_s"], "startup_s": None,
                     "return_mean100_final": r["return_mean100_final"],
                     "steps_per_s": r["steps_done"] / max(r["wall_s"], 1e-9)})
    return rows


def measure(presets: list[str] | None = None) -> list[dict[str, Any]]:
    presets = presets or list(TARGETS)
    rows = measure_rlplug(presets)
    if importlib.util.find_spec("stable_baselines3") is not None:
        rows += measure_sb3(presets)
    else:
        print("stable-baselines3 is not installed (pip install -e '.[bench]'): no SB3 reference")
    return rows


def plot(rows: list[dict[str, Any]], out: Path = RESULTS / "learning_curves.png") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlplug.outputs import moving_average

    curves = [r for r in rows if r.get("curve")]
    tasks = list(dict.fromkeys(r["task"] for r in curves))
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), dpi=100, squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for r in (r for r in curves if r["task"] == task):
            steps, returns = np.array(r["curve"]).T
            ax.plot(steps, moving_average(returns), label=f"seed {r['seed']}")
        ax.axhline(TARGETS[task], color="k", ls="--", lw=1, label="target")
        ax.set_title(f"experiment={task} (process executor, 2 workers)")
        ax.set_xlabel("env steps")
        ax.set_ylabel("mean return of the last 100 episodes")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out



def without_curves(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "curve"} for r in rows]


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| task | system | seed | target | reached at env steps | reached at s (from launch) "
             "| start-up s | mean100 at the end | env steps/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (list(TARGETS).index(r["task"]), r["system"] != "rlplug A3C")):
        reached = (f"{r['reached_at_steps']:,}" if r["reached_at_steps"]
                   else f"not within {r['budget_steps']:,}")
        lines.append(f"| {r['task']} | {r['system']} | {r['seed']} | {r['target']:g} | {reached} "
                     f"| {fmt(r['reached_at_s'], '.1f')} | {fmt(r['startup_s'], '.1f')} | "
                     f"{fmt(r['return_mean100_final'], '.1f')} | {r['steps_per_s']:,.0f} |")
    lines.append("")
    for task in TARGETS:
        for system in dict.fromkeys(r["system"] for r in rows):
            group = [r for r in rows if r["task"] == task and r["system"] == system]
            if not group:
                continue
            done = [r for r in group if r["reached_at_s"] is not None]
            line = f"- {task}, {system}: target reached in {len(done)}/{len(group)} seeds"
            if len(done) == len(group):
                line += (f", median {median(r['reached_at_s'] for r in done):.1f} s from launch "
                         f"and {median(r['reached_at_steps'] for r in done):,.0f} env steps")
            if system == "rlplug A3C":
                line += f" (goal: median <= {WALL_GOALS_S[task]:g} s)"
            lines.append(line)
    return "\n".join(lines) + "\n"
