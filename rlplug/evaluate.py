"""Evaluate a saved policy: ``python -m rlplug.evaluate <run dir or checkpoint> [key=value ...]``.

Keys: ``episodes`` (10), ``video`` (false; writes an mp4 with gymnasium's rgb_array rendering),
``deterministic`` (true: the policy's mode), ``seed`` (0), ``out`` (video path; default
``<run dir>/eval.mp4``). Prints the mean +/- std return and writes ``eval.json`` beside the video.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlplug.checkpoint import load_checkpoint, resolve_checkpoint
from rlplug.config import EnvConfig, RunConfig
from rlplug.contracts import Algorithm
from rlplug.envs import make_env, probe_env
from rlplug.errors import UserError


@dataclass
class EvalResult:
    returns: list[float]
    lengths: list[int]
    video: Path | None = None

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))


def _write_video(path: Path, frames: list[np.ndarray], fps: int) -> Path:
    try:
        import imageio.v2 as imageio
    except ImportError as exc:
        raise UserError("writing a video needs imageio and imageio-ffmpeg: "
                        "pip install 'rlplug[video]'") from exc
    imageio.mimwrite(path, frames, fps=fps, macro_block_size=1)
    return path


def evaluate_policy(algo: Algorithm, env_cfg: EnvConfig, episodes: int, *, seed: int = 0,
                    deterministic: bool = True, video_path: Path | None = None) -> EvalResult:
    """Run ``episodes`` episodes with the algorithm's actor; optionally record an mp4."""
    try:
        env = make_env(env_cfg, render_mode="rgb_array" if video_path else None)
    except Exception as exc:
        if video_path is not None and "pygame" in str(exc):
            raise UserError("rendering this env needs pygame: pip install 'rlplug[video]'") from exc
        raise
    actor = algo.actor(deterministic)
    frames: list[np.ndarray] = []
    returns, lengths = [], []
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            actor.reset()
            total, length, done = 0.0, 0, False
            while not done:
                if video_path is not None:
                    frames.append(_render(env))
                obs, reward, terminated, truncated, _ = env.step(actor.act(obs))
                total += float(reward)
                length += 1
                done = terminated or truncated
            returns.append(total)
            lengths.append(length)
    finally:
        env.close()
    video = None
    if video_path is not None:
        fps = int(env.metadata.get("render_fps", 30))
        video = _write_video(Path(video_path), frames, fps)
    return EvalResult(returns, lengths, video)


def _render(env: Any) -> np.ndarray:
    try:
        return env.render()
    except Exception as exc:
        if "pygame" in str(exc).lower():
            raise UserError("rendering this env needs pygame: pip install 'rlplug[video]'") from exc
        raise


def load_run(path: str | Path) -> tuple[RunConfig, Algorithm, dict[str, Any]]:
    """Rebuild the algorithm of a saved run (any registered network) from its checkpoint."""
    from rlplug.plugins import load_config_plugins
    from rlplug.run import build_algorithm
    from rlplug.schemas import run_config_from_dict

    load_config_plugins()
    payload = load_checkpoint(path)
    run = run_config_from_dict(payload["config"])
    algo = build_algorithm(run, probe_env(run.env))
    try:
        algo.load_state_dict(payload["algorithm"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise UserError(f"checkpoint {path} does not match its own config "
                        f"({str(exc).splitlines()[0]}); it was written by another version") from exc
    return run, algo, payload


_OPTIONS = {"episodes": int, "video": lambda v: v.lower() in ("1", "true", "yes"),
            "deterministic": lambda v: v.lower() in ("1", "true", "yes"), "seed": int, "out": str}


def parse_options(args: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {"episodes": 10, "video": False, "deterministic": True, "seed": 0,
                               "out": None}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or key not in _OPTIONS:
            raise UserError(f"unknown option '{arg}'; use key=value with key one of "
                            f"{', '.join(sorted(_OPTIONS))}")
        try:
            options[key] = _OPTIONS[key](value)
        except ValueError as exc:
            raise UserError(f"{key}={value} is not valid: {exc}") from exc
    if options["episodes"] < 1:
        raise UserError(f"episodes must be >= 1, got {options['episodes']}; set e.g. episodes=10")
    return options


def main(argv: list[str] | None = None) -> int:
    from rlplug.cli import report_user_errors

    argv = sys.argv[1:] if argv is None else argv
    with report_user_errors("rlplug.evaluate"):
        if not argv or argv[0].startswith("-"):
            raise UserError("usage: python -m rlplug.evaluate <run dir or checkpoint> "
                            "[episodes=10] [video=true] [deterministic=true] [seed=0] [out=PATH]")
        options = parse_options(argv[1:])
        checkpoint = resolve_checkpoint(argv[0])
        run, algo, payload = load_run(checkpoint)
        out = Path(options["out"]) if options["out"] else checkpoint.parent / "eval.mp4"
        result = evaluate_policy(algo, run.env, options["episodes"], seed=options["seed"],
                                 deterministic=options["deterministic"],
                                 video_path=out if options["video"] else None)
        report = {"checkpoint": str(checkpoint), "env_steps": payload["env_steps"],
                  "episodes": options["episodes"], "deterministic": options["deterministic"],
                  "return_mean": result.mean, "return_std": result.std, "returns": result.returns,
                  "lengths": result.lengths, "video": str(result.video) if result.video else None}
        (checkpoint.parent / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
        print(f"{run.env.id}: return {result.mean:.2f} +/- {result.std:.2f} over "
              f"{options['episodes']} episodes (checkpoint at {payload['env_steps']} env steps)")
        if result.video:
            print(f"video: {result.video}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
