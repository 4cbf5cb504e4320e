"""Evaluate a saved policy: ``python -m rlplug.evaluate <run dir or checkpoint> [key=value ...]``.

Loads the checkpoint (any registered network, feed-forward or recurrent) with the config saved in
it, runs whole episodes, prints the mean +/- std return and writes ``eval.json`` (returns, lengths,
video path) next to the checkpoint.

Keys: ``episodes`` (10), ``video`` (false; writes an mp4 of every episode with gymnasium's
rgb_array rendering), ``deterministic`` (true: the policy's mode; false: sample actions), ``seed``
(0: episode ``i`` resets the env with seed ``seed + i``), ``out`` (the video's path; default
``<run dir>/eval.mp4``).
"""

from __future__ import annotations

import json
import os
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


class _VideoWriter:
    """Streams rgb frames into an mp4 (frames are not kept in memory: a long evaluation of a
    large frame would not fit)."""

    def __init__(self, path: Path, fps: int):
        try:
            import imageio.v2 as imageio
        except ImportError as exc:
            raise UserError("writing a video needs imageio and imageio-ffmpeg: "
                            "pip install 'rlplug[video]'") from exc
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # macro_block_size=1: keep the env's frame size instead of rescaling to multiples of 16.
        self._writer = imageio.get_writer(path, fps=fps, macro_block_size=1)
        self.frames = 0

    def add(self, frame: np.ndarray) -> None:
        self._writer.append_data(np.asarray(frame))
        self.frames += 1

    def close(self) -> None:
        self._writer.close()


def evaluate_policy(algo: Algorithm, env_cfg: EnvConfig, episodes: int, *, seed: int = 0,
                    deterministic: bool = True, video_path: Path | None = None) -> EvalResult:
    """Run ``episodes`` episodes (env seeds ``seed``, ``seed + 1``, ...) with the algorithm's
    actor: its deterministic action (the policy's mode) unless ``deterministic`` is False.
    With ``video_path``, every frame is rendered (gymnasium's ``rgb_array``) into that mp4."""
    if video_path is not None:
        # rgb_array rendering draws off-screen: no window, so no display is needed (headless runs).
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    try:
        env = make_env(env_cfg, render_mode="rgb_array" if video_path else None)
    except Exception as exc:
        if video_path is not None and "pygame" in str(exc):
            raise UserError("rendering this env needs pygame: pip install 'rlplug[video]'") from exc
        raise
    actor = algo.actor(deterministic)
    returns, lengths = [], []
    writer = None
    try:
        if video_path is not None:
            writer = _VideoWriter(Path(video_path), int(env.metadata.get("render_fps") or 30))
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            actor.reset()  # a recurrent policy starts every episode from its initial state
            total, length, done = 0.0, 0, False
            while not done:
                if writer is not None:
                    writer.add(_render(env))
                obs, reward, terminated, truncated, _ = env.step(actor.act(obs))
                total += float(reward)
                length += 1
                done = terminated or truncated
            if writer is not None:
                writer.add(_render(env))  # the final state, so the video shows how it ended
            returns.append(total)
            lengths.append(length)
    finally:
        env.close()
        if writer is not None:
            writer.close()
    return EvalResult(returns, lengths, writer.path if writer is not None else None)


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


def _bool(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


_OPTIONS: dict[str, tuple[Any, str]] = {  # key: (parser, example)
    "episodes": (int, "episodes=10"), "video": (_bool, "video=true"),
    "deterministic": (_bool, "deterministic=true"), "seed": (int, "seed=0"),
    "out": (str, "out=eval.mp4"),
}


def parse_options(args: list[str]) -> dict[str, Any]:
    """``key=value`` arguments into options (defaults for the rest); one-line errors."""
    options: dict[str, Any] = {"episodes": 10, "video": False, "deterministic": True, "seed": 0,
                               "out": None}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or key not in _OPTIONS:
            raise UserError(f"unknown option '{arg}'; use key=value with key one of "
                            f"{', '.join(sorted(_OPTIONS))}")
        parse, example = _OPTIONS[key]
        try:
            options[key] = parse(value)
        except ValueError:
            raise UserError(f"{key}={value} is not valid; set e.g. {example}") from None
    if options["episodes"] < 1:
        raise UserError(f"episodes must be >= 1, got {options['episodes']}; set e.g. episodes=10")
    if options["seed"] < 0:
        raise UserError(f"seed must be >= 0, got {options['seed']}; set e.g. seed=0")
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
