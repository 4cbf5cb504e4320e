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
import sys
from pathlib import Path
from typing import Any

from rlplug.build import build_algorithm
from rlplug.checkpoint import load_checkpoint, resolve_checkpoint
from rlplug.config import RunConfig
from rlplug.contracts import Algorithm
from rlplug.envs import probe_env
from rlplug.errors import UserError, report_user_errors
from rlplug.evaluation import evaluate_policy
from rlplug.plugins import load_config_plugins
from rlplug.schemas import run_config_from_dict


def load_run(path: str | Path) -> tuple[RunConfig, Algorithm, dict[str, Any]]:
    """Rebuild the algorithm of a saved run (any registered network) from its checkpoint."""
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
