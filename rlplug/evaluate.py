"""Evaluate a saved policy: ``python -m rlplug.evaluate <run dir or checkpoint> [key=value ...]``.

Loads the checkpoint (any registered network, feed-forward or recurrent) with the config saved in
it, runs whole episodes, prints the mean +/- std return and writes ``eval.json`` (returns, lengths,
video path) next to the checkpoint.

Keys: ``episodes`` (10), ``video`` (false; writes an mp4 of every episode with gymnasium's
rgb_array rendering), ``deterministic`` (true: the policy's mode; false: sample actions), ``seed``
(0: episode ``i`` resets the env with seed ``seed + i``), ``out`` (the video's path; default
``<run dir>/eval.mp4``), ``which`` (for a run directory: ``best``, the kept policy
``checkpoint_best.pt``, falling back to the latest with a note when the run has none; ``latest``:
``checkpoint.pt``). With the defaults, the kept policy's return equals the run's
``eval_return_best`` (same episodes as the evaluation during training, if ``eval.seed`` and
``eval.episodes`` kept theirs).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlplug.build import build_algorithm
from rlplug.checkpoint import load_checkpoint, resolve_checkpoint
from rlplug.config import RunConfig, require
from rlplug.contracts import Algorithm
from rlplug.envs import probe_env
from rlplug.errors import UserError, report_user_errors
from rlplug.evaluation import evaluate_policy
from rlplug.interrupts import quiet_interrupts, raise_on_signals
from rlplug.periodic_eval import WHICH, choose_checkpoint
from rlplug.plugins import load_config_plugins
from rlplug.registry import suggest
from rlplug.schemas import run_config_from_dict


def load_run(path: str | Path) -> tuple[RunConfig, Algorithm, dict[str, Any]]:
    """Rebuild the algorithm of a saved run (any registered network) from its checkpoint."""
    load_config_plugins()
    payload = load_checkpoint(path, run=True)
    try:
        run = run_config_from_dict(payload["config"])
    except UserError:
        raise
    except Exception as exc:  # a hand-made or damaged config: one line
        raise UserError(f"checkpoint {path} holds a config rlplug cannot use ("
                        f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]})") from exc
    algo = build_algorithm(run, probe_env(run.env))
    try:
        algo.load_state_dict(payload["algorithm"])
    except Exception as exc:  # noqa: BLE001 - any mismatch of a hand-made state: one line
        raise UserError(f"checkpoint {path} does not match its own config "
                        f"({str(exc).splitlines()[0]}); it was written by another version") from exc
    return run, algo, payload


@dataclass
class EvaluateConfig:
    """The options of ``python -m rlplug.evaluate`` (``key=value`` arguments, OmegaConf's dotlist
    syntax); ranges are checked here, types by OmegaConf. A new option is one more field."""

    episodes: int = 10
    video: bool = field(default=False, metadata={"example": "video=true"})  # an mp4 of each episode
    deterministic: bool = True  # the policy's mode; false: sample actions
    seed: int = 0  # episode i resets the env with seed + i
    # the video's path; default: <run dir>/eval.mp4
    out: str | None = field(default=None, metadata={"example": "out=eval.mp4"})
    which: str = "best"  # for a run directory: best (checkpoint_best.pt) or latest (checkpoint.pt)

    def __post_init__(self) -> None:
        require(self.episodes >= 1, "episodes", "must be >= 1", self.episodes, "episodes=10")
        require(self.seed >= 0, "seed", "must be >= 0", self.seed, "seed=0")
        require(self.which in WHICH, "which", f"must be {' or '.join(WHICH)}", self.which,
                "which=best")


def _example(option: dataclasses.Field[Any]) -> str:
    """A valid ``key=value`` for an option: its metadata's example, else its default."""
    if "example" in option.metadata:
        return str(option.metadata["example"])
    default = option.default
    return f"{option.name}={str(default).lower() if isinstance(default, bool) else default}"


def parse_options(args: list[str]) -> EvaluateConfig:
    """``key=value`` arguments into an :class:`EvaluateConfig` (defaults for the rest); one-line
    errors naming the argument."""
    options = {f.name: f for f in dataclasses.fields(EvaluateConfig)}
    cfg = OmegaConf.structured(EvaluateConfig)
    for arg in args:
        key, sep, _ = arg.partition("=")
        if not sep and key in options:
            raise UserError(f"'{arg}' needs a value; set e.g. {_example(options[key])}")
        if not sep or key not in options:
            raise UserError(f"unknown option '{arg}'; use key=value with key one of "
                            f"{', '.join(options)}.{suggest(key, list(options))}")
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([arg]))
        except OmegaConfBaseException as exc:
            raise UserError(f"{arg} is not valid; set e.g. {_example(options[key])}") from exc
    config = OmegaConf.to_object(cfg)  # runs __post_init__: the range checks
    assert isinstance(config, EvaluateConfig)
    return config


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with report_user_errors("rlplug.evaluate"):
        if not argv or argv[0].startswith("-"):
            raise UserError("usage: python -m rlplug.evaluate <run dir or checkpoint> "
                            "[episodes=10] [video=true] [deterministic=true] [seed=0] [out=PATH] "
                            "[which=best|latest]")
        options = parse_options(argv[1:])
        chosen, note = choose_checkpoint(argv[0], options.which)
        checkpoint = resolve_checkpoint(chosen)
        run, algo, payload = load_run(checkpoint)
        if note:  # only once the fallback checkpoint loaded: an error stays one line
            print(f"rlplug.evaluate: {note}", file=sys.stderr)
        out = Path(options.out) if options.out else checkpoint.parent / "eval.mp4"
        result = evaluate_policy(algo, run.env, options.episodes, seed=options.seed,
                                 deterministic=options.deterministic,
                                 video_path=out if options.video else None)
        report = {"checkpoint": str(checkpoint), "env_steps": payload["env_steps"],
                  "which": options.which,
                  "episodes": options.episodes, "deterministic": options.deterministic,
                  "return_mean": result.mean, "return_std": result.std, "returns": result.returns,
                  "lengths": result.lengths, "video": str(result.video) if result.video else None}
        try:
            (checkpoint.parent / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
        except OSError as exc:  # a read-only run directory, a full disk
            raise UserError(f"cannot write {checkpoint.parent / 'eval.json'}: "
                            f"{exc.strerror or exc}") from exc
        print(f"{run.env.id}: return {result.mean:.2f} +/- {result.std:.2f} over "
              f"{options.episodes} episodes ({checkpoint.name} at {payload['env_steps']} "
              f"env steps)")
        if result.video:
            print(f"video: {result.video}")
    return 0


if __name__ == "__main__":
    raise_on_signals(until_a_run_starts=lambda: None)  # Ctrl-C: one line, exit 130, at once
    with quiet_interrupts("rlplug.evaluate"):
        sys.exit(main())
