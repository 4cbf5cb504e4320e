"""Files a run leaves in its directory besides the checkpoint: summary.json, learning_curve.png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rlplug import messages
from rlplug.periodic_eval import EVAL

SUMMARY_NAME = "summary.json"
CURVE_NAME = "learning_curve.png"
METRICS_NAME = "metrics.jsonl"


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Rows of a metrics.jsonl file. A torn last line (killed mid-write) is skipped, and so is
    any row that is not one rlplug could have written (not an object, a non-numeric env step, an
    episode without a numeric return and length): a damaged or hand-edited file must not stop a
    resume or a report."""
    rows = []
    if not path.exists():
        return rows
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                continue
            if _plausible_row(row):
                rows.append(row)
    return rows


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _plausible_row(row: Any) -> bool:
    if not isinstance(row, dict) or not _is_number(row.get("env_step", 0)):
        return False
    if row.get("kind") == messages.EPISODE:
        return _is_number(row.get("return")) and _is_number(row.get("length", 0))
    return True


def episode_curve(rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(env_step, return) of every finished episode, in env-step order."""
    episodes = [r for r in rows if r.get("kind") == messages.EPISODE]
    episodes.sort(key=lambda r: r["env_step"])
    return (np.array([r["env_step"] for r in episodes], dtype=float),
            np.array([r["return"] for r in episodes], dtype=float))


def moving_average(values: np.ndarray, window: int = 100) -> np.ndarray:
    """Mean of the last ``window`` values at each point (fewer at the start)."""
    if values.size == 0:
        return values
    cumsum = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, values.size + 1)
    lo = np.maximum(0, idx - window)
    return (cumsum[idx] - cumsum[lo]) / (idx - lo)


def new_figure(width: float = 7, height: float = 4) -> tuple[Any, Any]:
    """A matplotlib figure and axes on the non-interactive backend (no display needed)."""
    # Imported here: matplotlib is heavy, and only the figures at the end of a run need it.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after choosing the backend

    return plt.subplots(figsize=(width, height), dpi=100)


def save_returns_figure(fig: Any, ax: Any, out_path: Path, title: str, ylabel: str) -> Path:
    """The finish every rlplug returns plot shares: legend (or a note when there is no episode),
    labels, grid; writes ``out_path`` and closes the figure."""
    import matplotlib.pyplot as plt  # heavy: see new_figure

    if ax.lines:
        ax.legend(loc="best", fontsize="small")
    else:
        ax.text(0.5, 0.5, "no finished episode", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("env steps")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_path)
    plt.close(fig)
    return out_path


def eval_points(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The evaluation rows (evaluation during training), in env-step order."""
    return sorted((r for r in rows if r.get("kind") == EVAL), key=lambda r: r["env_step"])


def plot_learning_curve(metrics_path: Path, out_path: Path, title: str) -> Path:
    """Episode returns and their 100-episode moving average against env steps, and the
    evaluations during training (mean +/- std over their episodes)."""
    rows = read_metrics(metrics_path)
    steps, returns = episode_curve(rows)
    fig, ax = new_figure()
    if steps.size:
        ax.scatter(steps, returns, s=3, alpha=0.25, label="episode return")
        ax.plot(steps, moving_average(returns), color="C1", lw=2, label="mean of last 100")
    evals = eval_points(rows)
    if evals:
        kind = "deterministic" if all(r.get("deterministic", True) for r in evals) else "sampled"
        ax.errorbar([r["env_step"] for r in evals], [r["return_mean"] for r in evals],
                    yerr=[r["return_std"] for r in evals], color="C2", marker="o", ms=4, lw=1.5,
                    capsize=2, label=f"evaluation ({kind}, {evals[-1]['episodes']} episodes)")
    return save_returns_figure(fig, ax, out_path, title, "return")


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
