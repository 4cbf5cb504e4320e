"""Learning: env steps and wall time for the tuned presets to reach their target mean return
(last 100 episodes), three seeds each, with the process executor and 2 workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS, episodes, first_reach, run_job

TARGETS = {"pendulum": (-200.0, 500_000), "cartpole": (475.0, 150_000)}
SEEDS = (0, 1, 2)


def measure(presets: dict[str, tuple[float, int]] = TARGETS) -> list[dict[str, Any]]:
    rows = []
    for preset, (threshold, budget) in presets.items():
        for seed in SEEDS:
            summary = run_job([f"experiment={preset}", "executor=process", "executor.workers=2",
                               f"seed={seed}", f"total_steps={budget}"])
            reached = first_reach(summary["run_dir"], threshold)
            rows.append({"preset": preset, "seed": seed, "threshold": threshold,
                         "budget_steps": budget, "reached_at_steps": reached and reached[0],
                         "reached_at_wall_s": reached and round(reached[1], 1),
                         "return_mean100_final": summary["return_mean100_final"],
                         "return_mean100_best": summary["return_mean100_best"],
                         "wall_s": summary["wall_s"], "run_dir": summary["run_dir"]})
            print({k: v for k, v in rows[-1].items() if k != "run_dir"}, flush=True)
    return rows


def plot(rows: list[dict[str, Any]], out: Path = RESULTS / "learning_curves.png") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlplug.outputs import moving_average

    presets = sorted({r["preset"] for r in rows})
    fig, axes = plt.subplots(1, len(presets), figsize=(6 * len(presets), 4), dpi=100, squeeze=False)
    for ax, preset in zip(axes[0], presets, strict=True):
        for r in (r for r in rows if r["preset"] == preset):
            eps = episodes(r["run_dir"])
            steps = np.array([e["env_step"] for e in eps])
            ax.plot(steps, moving_average(np.array([e["return"] for e in eps])),
                    label=f"seed {r['seed']}")
        ax.axhline(r["threshold"], color="k", ls="--", lw=1, label="target")
        ax.set_title(f"experiment={preset} (process, 2 workers)")
        ax.set_xlabel("env steps")
        ax.set_ylabel("mean return of last 100 episodes")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| preset | seed | target | reached at env steps | wall s | mean100 final | "
             "mean100 best |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        reached = f"{r['reached_at_steps']:,}" if r["reached_at_steps"] else \
            f"not within {r['budget_steps']:,}"
        wall = r["reached_at_wall_s"] if r["reached_at_wall_s"] else "-"
        lines.append(f"| {r['preset']} | {r['seed']} | {r['threshold']:g} | {reached} | {wall} | "
                     f"{r['return_mean100_final']:.1f} | {r['return_mean100_best']:.1f} |")
    return "\n".join(lines) + "\n"
