"""``python -m rlplug.evaluate``: saved feed-forward and LSTM policies, deterministic returns, mp4s.

Each policy is trained for real first (tiny runs), then evaluated through the command line and
in-process; videos are decoded back to count their frames.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import pytest
from hydra import compose, initialize_config_module

from rlplug.config import RunConfig, to_run_config
from rlplug.evaluate import load_run
from rlplug.evaluate import main as evaluate_main
from rlplug.evaluation import evaluate_policy
from rlplug.plugins import install_search_path
from rlplug.run import train

TESTS_DIR = Path(__file__).resolve().parent
TINY = ["env=cartpole", "executor=thread", "progress=false", "checkpoint.every_steps=0"]
LSTM_EPISODE = 50  # steps per Pendulum episode of the LSTM run (its own limit is 200)
PRINTED = re.compile(r"CartPole-v1: return (-?[\d.]+) \+/- ([\d.]+) over (\d+) episodes")


def compose_run(*overrides: str) -> RunConfig:
    install_search_path()
    with initialize_config_module(config_module="rlplug.conf", version_base="1.3"):
        return to_run_config(compose("config", overrides=[*TINY, *overrides]))


def evaluate_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rlplug.evaluate", *args], capture_output=True,
                          text=True, timeout=300)


def video_frames(path: Path) -> int:
    reader = imageio.get_reader(path)
    try:
        return reader.count_frames()
    finally:
        reader.close()


@pytest.fixture(scope="module")
def ff_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A feed-forward run; logger.video=true writes eval.mp4 even with W&B disabled."""
    run_dir = tmp_path_factory.mktemp("ff")
    run = compose_run("total_steps=3000", "logger.mode=disabled", "logger.video=true")
    assert train(run, run_dir).status == "completed"
    assert video_frames(run_dir / "eval.mp4") > 1
    return run_dir


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An LSTM run that also records the evaluation video at the end of training (W&B offline).
    Pendulum: its float returns change with any change of action, so a recurrent state leaking
    from one episode into the next would show. Episodes of 50 steps (not 200): every rendered
    frame costs time, and 50 steps carry a state as well as 200."""
    run_dir = tmp_path_factory.mktemp("lstm")
    run = compose_run("env=pendulum", f"env.max_episode_steps={LSTM_EPISODE}", "network=lstm",
                      "total_steps=1000", "logger.mode=offline", "logger.video=true")
    assert train(run, run_dir).status == "completed"
    return run_dir


def test_evaluate_feedforward_run_prints_mean_and_std_and_writes_video(ff_run: Path) -> None:
    result = evaluate_cli(str(ff_run), "episodes=3", "video=true")
    assert result.returncode == 0, result.stderr[-3000:]
    printed = PRINTED.search(result.stdout)
    assert printed, result.stdout
    report = json.loads((ff_run / "eval.json").read_text())
    assert len(report["returns"]) == 3 and report["deterministic"] is True
    assert float(printed.group(1)) == pytest.approx(report["return_mean"], abs=0.006)
    assert float(printed.group(2)) == pytest.approx(report["return_std"], abs=0.006)
    assert report["returns"] == [float(n) for n in report["lengths"]]  # CartPole: +1 per step
    # every step of every episode is in the video, plus each episode's final frame
    video = ff_run / "eval.mp4"
    assert report["video"] == str(video) and video.stat().st_size > 0
    assert video_frames(video) == sum(report["lengths"]) + 3

    # the same checkpoint evaluated in-process, deterministically, gives the same returns
    run, algo, _ = load_run(ff_run)
    again = evaluate_policy(algo, run.env, 3, seed=0)
    assert again.returns == report["returns"]


def test_evaluate_lstm_checkpoint_file_resets_state_between_episodes(lstm_run: Path,
                                                                     tmp_path: Path) -> None:
    out = tmp_path / "videos" / "lstm.mp4"
    result = evaluate_cli(str(lstm_run / "checkpoint.pt"), "episodes=2", "video=true",
                          f"out={out}", "seed=5")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((lstm_run / "eval.json").read_text())
    assert report["video"] == str(out) and video_frames(out) == sum(report["lengths"]) + 2

    run, algo, _ = load_run(lstm_run / "checkpoint.pt")
    assert run.network.name == "lstm"
    # episode 2 of the evaluation (env seed 6) equals a fresh evaluation from seed 6: the
    # recurrent state starts over with every episode
    second = evaluate_policy(algo, run.env, 1, seed=6)
    assert second.returns == report["returns"][1:]
    assert report["lengths"] == [LSTM_EPISODE, LSTM_EPISODE]  # the saved env config applies


def test_training_with_logger_video_writes_and_logs_an_evaluation_video(
        lstm_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    import wandb_records

    video = lstm_run / "eval.mp4"
    # one Pendulum episode: its steps plus the final frame
    assert video.stat().st_size > 0 and video_frames(video) == LSTM_EPISODE + 1
    (path,) = wandb_records.run_files(lstm_run)
    wb = wandb_records.read_run(path)
    assert wb.column("eval/video/_type") == ["video-file"]


@pytest.mark.parametrize("args, message", [
    (["{missing}"], "no checkpoint at"),
    (["{run}", "episodes=0"], "episodes must be >= 1"),
    (["{run}", "video=maybe"], "video=maybe is not valid"),
    (["{run}", "speed=2"], "unknown option 'speed=2'"),
    (["{run}", "episodes=ten"], "episodes=ten is not valid; set e.g. episodes=10"),
    (["{run}", "seed=-1"], "seed must be >= 0, got -1"),
    (["{run}", "episodes"], "'episodes' needs a value"),
])
def test_evaluate_bad_input_is_a_one_line_error(ff_run: Path, tmp_path: Path, args: list[str],
                                                message: str, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    args = [a.format(missing=tmp_path / "nothing", run=ff_run) for a in args]
    with pytest.raises(SystemExit) as exit_info:
        evaluate_main(args)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlplug.evaluate: error: "), lines
    assert message in lines[0]
