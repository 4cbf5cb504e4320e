"""``python -m rlplug.report``: grouping jobs into settings, mean +/- std across seeds, ordering,
the mean learning curves, and one-line errors.

The sweeps here are directories laid out the way a Hydra multirun leaves them (job folders with
``.hydra/overrides.yaml``, ``summary.json`` and ``metrics.jsonl``), written with known numbers so
the arithmetic can be checked exactly; tests/test_sweeps.py runs the report on a real multirun.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rlplug.report import Job, Setting, job_curve, main, mean_curve, write_report

SHARED = ["env=cartpole", "total_steps=1000"]


def make_job(sweep: Path, num: int, overrides: list[str], final: float | None,
             best: float | None = None, status: str = "completed",
             returns: list[float] | None = None, hydra: bool = True,
             config: dict | None = None) -> Path:
    """A job directory as a multirun leaves it; episodes every 100 env steps."""
    seed = next(int(o.split("=")[1]) for o in overrides if o.startswith("seed="))
    job = sweep / f"{num}_{','.join(sorted(overrides))}"
    job.mkdir(parents=True)
    if hydra:
        (job / ".hydra").mkdir()
        (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    summary = {"status": status, "env_steps": 1000, "seed": seed, "return_mean100_final": final,
               "return_mean100_best": final if best is None else best,
               "config": config or {"seed": seed}}
    (job / "summary.json").write_text(json.dumps(summary))
    rows = [{"kind": "episode", "worker": 0, "env_step": 100 * (i + 1), "return": r, "length": 100}
            for i, r in enumerate(returns or [])]
    (job / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return job


def lr_sweep(root: Path) -> Path:
    """algo.lr=1e-4 with seeds 0-2 (finals 10, 20, 30; seed 3 failed) and algo.lr=3e-4 with
    seeds 0-1 (finals 50, 70), both with the shared overrides."""
    sweep = root / "sweep"
    num = 0
    for lr, seeds in (("1e-4", {0: 10.0, 1: 20.0, 2: 30.0, 3: None}), ("3e-4", {0: 50.0, 1: 70.0})):
        for seed, final in seeds.items():
            make_job(sweep, num, [f"seed={seed}", f"algo.lr={lr}", *SHARED], final,
                     best=None if final is None else final + 5,
                     status="failed" if final is None else "completed",
                     returns=[final or 0.0] * 10)
            num += 1
    return sweep


def test_report_groups_seeds_and_sorts_settings_by_mean_return(tmp_path: Path) -> None:
    sweep = lr_sweep(tmp_path)
    text, files = write_report(sweep)
    assert [f.name for f in files] == ["report.md", "report.json", "report.png"]
    report = json.loads((sweep / "report.json").read_text())
    assert report["shared_overrides"] == SHARED
    best, second = report["settings"]
    assert best["setting"] == "algo.lr=3e-4" and best["seeds"] == [0, 1]
    assert best["return_mean100_final"]["mean"] == pytest.approx(60.0)
    assert best["return_mean100_final"]["std"] == pytest.approx(np.sqrt(200.0))  # sample std
    assert best["return_mean100_best"]["mean"] == pytest.approx(65.0)
    assert second["setting"] == "algo.lr=1e-4" and second["seeds"] == [0, 1, 2, 3]
    # the failed seed has no return: it is counted but not averaged
    assert second["return_mean100_final"]["values"] == [10.0, 20.0, 30.0]
    assert second["return_mean100_final"]["std"] == pytest.approx(10.0)
    assert second["status"] == ["completed", "completed", "completed", "failed"]

    md = (sweep / "report.md").read_text()
    assert md == text
    rows = [line for line in md.splitlines() if line.startswith("| ") and "`algo.lr" in line]
    assert rows[0].startswith("| 1 | `algo.lr=3e-4` | 2 (0, 1) | 60.0 ± 14.1 | 65.0 ± 14.1 |")
    assert rows[1].startswith("| 2 | `algo.lr=1e-4` | 4 (0, 1, 2, 3) | 20.0 ± 10.0 |")
    assert rows[1].endswith("| 3 completed, 1 failed |")
    assert "Shared overrides: `env=cartpole total_steps=1000`" in md
    assert (sweep / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_curves_average_seeds_on_a_common_grid(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    low = make_job(sweep, 0, ["seed=0"], 10.0, returns=[10.0] * 10)  # episodes at 100..1000
    high = make_job(sweep, 1, ["seed=1"], 20.0, returns=[20.0] * 5)  # episodes at 100..500
    grid = np.array([0.0, 100.0, 300.0, 500.0, 800.0])
    jobs = [Job(low, {"seed": 0}, []), Job(high, {"seed": 1}, [])]

    np.testing.assert_allclose(job_curve(jobs[0], grid), [np.nan, 10, 10, 10, 10])
    mean, std, covered, n = mean_curve(Setting("all", [], jobs), grid)
    assert n == 2
    # only where both seeds have episodes
    assert covered.tolist() == [False, True, True, True, False]
    np.testing.assert_allclose(mean[covered], 15.0)
    np.testing.assert_allclose(std[covered], np.sqrt(50.0))


def test_curve_is_the_100_episode_moving_average(tmp_path: Path) -> None:
    returns = [float(i) for i in range(1, 151)]  # 150 episodes at env steps 100, 200, ...
    job = make_job(tmp_path / "sweep", 0, ["seed=0"], 0.0, returns=returns)
    curve = job_curve(Job(job, {}, []), np.array([1000.0, 15000.0]))
    # after 10 episodes: mean of 1..10; after 150: mean of the last 100 (51..150)
    np.testing.assert_allclose(curve, [5.5, 100.5])


def test_jobs_without_hydra_overrides_are_grouped_by_their_config(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    for num, (seed, lr, final) in enumerate([(0, 0.001, 1.0), (1, 0.001, 3.0), (0, 0.01, 9.0)]):
        make_job(sweep, num, [f"seed={seed}"], final, hydra=False,
                 config={"seed": seed, "algo": {"lr": lr, "gamma": 0.99}})
    write_report(sweep)
    settings = json.loads((sweep / "report.json").read_text())["settings"]
    assert [(s["setting"], s["seeds"]) for s in settings] == [("algo.lr=0.01", [0]),
                                                               ("algo.lr=0.001", [0, 1])]
    assert settings[0]["return_mean100_final"]["std"] is None  # one seed: no spread
    assert settings[1]["return_mean100_final"]["mean"] == pytest.approx(2.0)


@pytest.mark.parametrize("make, message", [
    (lambda root: root, "no summary.json under"),
    (lambda root: root / "missing", "is not a directory"),
])
def test_report_on_a_directory_without_summaries_is_a_one_line_error(
        tmp_path: Path, make, message: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    (tmp_path / "job" / "wandb").mkdir(parents=True)
    with pytest.raises(SystemExit) as exit_info:
        main([str(make(tmp_path))])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlplug.report: error: ") and message in lines[0]
    assert not (tmp_path / "report.md").exists()
