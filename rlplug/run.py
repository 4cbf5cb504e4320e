"""One training run in three steps: build, execute, finish.

    config --> build (env spaces, algorithm, executor, resume, logger)
           --> execute (executor.run, with RunControl as its tick)
           --> finish (final checkpoint, summary, curve, video, W&B), whatever happened

Nothing is lost: once the run is built, every output is attempted even if the run failed, was
interrupted or another output could not be written.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rlplug import messages, rundir
from rlplug.build import build_algorithm, build_executor, config_dict, worker_seeds
from rlplug.checkpoint import (
    CHECKPOINT_NAME,
    all_finite,
    load_checkpoint,
    rng_state,
    save_checkpoint,
)
from rlplug.config import RunConfig, to_run_config
from rlplug.contracts import Algorithm, Executor, SharedModel
from rlplug.control import RunControl, record_signals
from rlplug.counters import SharedCounters
from rlplug.envs import probe_env
from rlplug.errors import UserError, WorkerFailure
from rlplug.evaluation import evaluate_policy
from rlplug.interrupts import ignoring_signals, interrupt_exit_code
from rlplug.loggers.wandb_logger import WandbLogger
from rlplug.monitor import Monitor, ReturnStats
from rlplug.outputs import (
    CURVE_NAME,
    METRICS_NAME,
    SUMMARY_NAME,
    plot_learning_curve,
    read_metrics,
    write_summary,
)
from rlplug.periodic_eval import PeriodicEvaluation, choose_checkpoint
from rlplug.plugins import distributions_with_plugins
from rlplug.resume import resume

log = logging.getLogger(__name__)

EXIT_CODES = {"completed": 0, "failed": 1, "interrupted": 130}


@dataclass
class RunResult:
    status: str  # completed | interrupted | failed
    exit_code: int
    summary: dict[str, Any]
    run_dir: Path
    error: str | None = None


@dataclass
class Session:
    """A built run: its parts, and what the main process keeps track of while it executes."""

    run: RunConfig
    run_dir: Path
    resolved: dict[str, Any]
    algo: Algorithm
    executor: Executor
    counters: SharedCounters
    returns: ReturnStats
    logger: WandbLogger
    monitor: Monitor
    start_steps: int
    model: SharedModel | None = None  # the hosted model, once the executor hosts it
    control: RunControl | None = None
    evaluation: PeriodicEvaluation | None = None  # eval.every_steps > 0: evaluation, best policy

    def sync_model(self) -> None:
        """Bring the algorithm's own model up to date with the hosted one (a remote copy)."""
        if self.model is not None and self.model is not self.algo.model:
            self.algo.model.load_state_dict(self.model.state_dict())

    def checkpoint(self) -> None:
        """Write checkpoint.pt atomically, unless the model holds non-finite values."""
        self.sync_model()
        state = self.algo.state_dict()
        if not all_finite(state):
            log.error("no checkpoint at env step %d: the model holds non-finite values; the last "
                      "good checkpoint stays", self.counters.env_steps)
            return
        save_checkpoint(self.run_dir / CHECKPOINT_NAME, {"algorithm": state, **self.run_state()})

    def run_state(self) -> dict[str, Any]:
        """What a checkpoint keeps besides the algorithm's state."""
        return {"config": self.resolved, "env_steps": self.counters.env_steps,
                "episodes": self.counters.episodes, "wall_s": self.monitor.wall_s,
                "rng": rng_state(), "wandb_run_id": self.logger.run_id}

    def evaluate(self) -> None:
        """Evaluate a snapshot of the global model; the best so far becomes checkpoint_best.pt
        (:mod:`rlplug.periodic_eval`). A model holding non-finite values is not evaluated."""
        if self.evaluation is None:
            return
        self.sync_model()
        env_step = self.counters.env_steps  # read first: the snapshot is at least this new
        state = self.algo.state_dict()
        if not all_finite(state):
            log.error("no evaluation at env step %d: the model holds non-finite values", env_step)
            return
        self.evaluation.evaluate(state, env_step, self.run_state)


@dataclass
class Outcome:
    """How execution ended."""

    status: str = "completed"
    error: str | None = None
    signum: int | None = None
    fatal: bool = False  # the shared model may be broken: keep the last good checkpoint
    session_s: float = 0.0
    output_errors: list[str] = field(default_factory=list)


def train(cfg: DictConfig | RunConfig, run_dir: Path, *, wandb_group: str | None = None,
          wandb_name: str | None = None) -> RunResult:
    """Train as ``cfg`` says, writing everything into ``run_dir``.

    Raises :class:`UserError` for bad input before any worker starts. Afterwards nothing is lost:
    whatever happens, the checkpoint, metrics.jsonl, summary.json and the learning curve are written.
    """
    run = cfg if isinstance(cfg, RunConfig) else to_run_config(cfg)
    run_dir = Path(run_dir)
    # The run owns its directory until every output is written (a second run is refused).
    with rundir.claim(run_dir, run.resume):
        try:
            session = build(run, run_dir, wandb_group, wandb_name)
        except KeyboardInterrupt as exc:  # Ctrl-C/SIGTERM while starting (imports, wandb.init)
            return _interrupted_while_starting(run, run_dir, exc)
        outcome = Outcome()
        try:
            execute(session, outcome)
        except KeyboardInterrupt:  # before execute could take over the signals
            outcome.status, outcome.signum = "interrupted", signal.SIGINT
        finally:
            result = finish(session, outcome)
    return result


def _interrupted_while_starting(run: RunConfig, run_dir: Path,
                                exc: KeyboardInterrupt) -> RunResult:
    """No worker ran: leave a summary.json saying so (unless the directory already has one,
    e.g. a resume in place), and the exit code of the signal."""
    with ignoring_signals():
        note = "interrupted while starting, before any env step"
        extra = {"seed": run.seed, "resumed_from": run.resume, "config": config_dict(run)}
        rundir.write_interrupted_summary(run_dir, note, extra)
        log.warning("interrupted while starting; no env step was taken")
    summary = {"status": "interrupted", "env_steps": 0, "episodes": 0, "note": note}
    return RunResult("interrupted", interrupt_exit_code(exc), summary, run_dir)


# -- build -----------------------------------------------------------------------------------
def build(run: RunConfig, run_dir: Path, wandb_group: str | None,
          wandb_name: str | None) -> Session:
    """Every part of the run, checked; :class:`UserError` before anything starts."""
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = probe_env(run.env)
    executor = build_executor(run)
    algo = build_algorithm(run, spec)
    # The evaluator's own instance (no worker ever writes to it), built before resume restores
    # the RNG state: building an algorithm may seed torch.
    eval_algo = build_algorithm(run, spec) if run.eval.every_steps else None
    resolved = config_dict(run)
    resumed = resume(run, algo, run_dir) if run.resume else None
    start_steps, start_episodes = (resumed["env_steps"], resumed["episodes"]) if resumed else (0, 0)
    counters = SharedCounters(start_steps, start_episodes)
    returns = ReturnStats()
    for row in read_metrics(run_dir / METRICS_NAME):
        if row.get("kind") == messages.EPISODE:
            returns.add(row["return"], row.get("success"))
    logger = WandbLogger(run.logger, resolved, run_dir, wandb_group, wandb_name,
                         resume_id=resumed.get("wandb_run_id") if resumed else None)
    monitor = Monitor(run_dir, counters, run.total_steps, [logger], run.progress,
                      wall_offset=resumed["wall_s"] if resumed else 0.0, returns=returns)
    evaluation = None
    if eval_algo is not None:
        evaluation = PeriodicEvaluation(run.eval, run.env, eval_algo, run_dir,
                                        monitor.on_message)
        if run.resume:
            source = Path(run.resume).expanduser()
            evaluation.restore(source if source.is_dir() else source.parent,
                               read_metrics(run_dir / METRICS_NAME))
            monitor.eval_return = evaluation.last
    return Session(run, run_dir, resolved, algo, executor, counters, returns, logger, monitor,
                   start_steps, evaluation=evaluation)


# -- execute ---------------------------------------------------------------------------------
def execute(session: Session, outcome: Outcome) -> None:
    """Host the model and run the workers; record in ``outcome`` how it ended (an unexpected
    error in the main process is recorded, then raised)."""
    run, executor = session.run, session.executor
    control = session.control = RunControl(executor, session.counters, session.monitor,
                                           session.logger, session.checkpoint,
                                           run.checkpoint.every_steps,
                                           evaluate=session.evaluate if session.evaluation else None,
                                           eval_every=run.eval.every_steps)
    start = time.monotonic()
    with record_signals(control.received):
        try:
            session.model = executor.host(session.algo.model)
            executor.run(session.algo.run_worker, model=session.model,
                         seeds=worker_seeds(run.seed, executor.workers, session.start_steps),
                         counters=session.counters, total_steps=run.total_steps,
                         on_message=session.monitor.on_message, on_tick=control.on_tick,
                         report_every_s=run.logger.train_log_every_s)
        except KeyboardInterrupt:  # SIGINT where no handler could be installed
            outcome.status, outcome.signum = "interrupted", signal.SIGINT
        except WorkerFailure as exc:
            outcome.status, outcome.error, outcome.fatal = "failed", str(exc), exc.fatal
        except OSError as exc:  # a full disk, a vanished directory: one line, not a traceback
            outcome.status, outcome.error = "failed", f"{type(exc).__name__}: {exc}"
            log.error("the main process could not go on: %s", outcome.error)
        except Exception as exc:  # a bug in the main process: record it, then raise
            outcome.status, outcome.error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if control.signal is not None and outcome.status == "completed":
                outcome.status, outcome.signum = "interrupted", control.signal
            outcome.session_s = time.monotonic() - start
            control.next_checkpoint = 0  # no periodic checkpoint while closing: the final one decides
            control.next_eval = 0  # nor evaluation: a completed run gets its final one


# -- finish ----------------------------------------------------------------------------------
def finish(session: Session, outcome: Outcome) -> RunResult:
    """Write every output, each on its own: one that fails (e.g. a full disk) is reported in one
    line and does not cost the others."""
    run, run_dir, counters = session.run, session.run_dir, session.counters

    def attempt(what: str, write: Any) -> Any:
        try:
            return write()
        except Exception as exc:  # noqa: BLE001 - reported, and the other outputs still written
            line = f"could not write the {what}: {type(exc).__name__}: {exc}".splitlines()[0]
            log.error(line)
            outcome.output_errors.append(line)
            return None

    with record_signals([]):  # a second Ctrl-C must not cut the writes short
        if outcome.status == "completed" and session.evaluation is not None:
            attempt("final evaluation", session.evaluate)  # eval_return_final: the final policy
        attempt("metrics", session.monitor.close)
        if not outcome.fatal:  # after a fatal worker error (e.g. a non-finite loss) the last good one stays
            attempt("final checkpoint", session.checkpoint)
        else:
            attempt("model state", session.sync_model)
        attempt("executor shutdown", session.executor.close)
        summary = {
            "status": outcome.status, "env_steps": counters.env_steps,
            "episodes": counters.episodes, "wall_s": round(session.monitor.wall_s, 3),
            "steps_per_s": round((counters.env_steps - session.start_steps)
                                 / max(outcome.session_s, 1e-9), 1),
            "return_mean100_final": session.returns.mean,
            "return_mean100_best": session.returns.best_or_mean,
            "eval_return_final": session.evaluation.last if session.evaluation else None,
            "eval_return_best": session.evaluation.best if session.evaluation else None,
            "wall_origin_unix": round(time.time() - session.monitor.wall_s, 3),  # when wall_s was 0
            "success_rate_100": session.returns.success_rate,
            "seed": run.seed, "workers": session.executor.workers, "resumed_from": run.resume,
            "error": outcome.error, "plugins": distributions_with_plugins(),
            "config": session.resolved,
        }
        curve = attempt("learning curve", lambda: plot_learning_curve(
            run_dir / METRICS_NAME, run_dir / CURVE_NAME,
            f"{run.env.id} {run.algo.name}/{run.network.name} seed {run.seed}"))
        video = (attempt("evaluation video", lambda: _maybe_video(session))
                 if outcome.status == "completed" else None)
        summary["output_errors"] = list(outcome.output_errors)
        attempt("summary", lambda: write_summary(run_dir / SUMMARY_NAME, summary))
        exit_code = 143 if outcome.signum == signal.SIGTERM else EXIT_CODES[outcome.status]
        if exit_code == 0 and outcome.output_errors:
            exit_code = 1
        checkpoint_path = run_dir / CHECKPOINT_NAME
        session.logger.finish(summary, checkpoint_path if checkpoint_path.exists() else None,
                              curve, video, exit_code)
    return RunResult(outcome.status, exit_code, summary, run_dir, outcome.error)


def _maybe_video(session: Session) -> Path | None:
    """``logger.video``: eval.mp4 of the kept policy (checkpoint_best.pt; with
    ``logger.video_which=latest``, or without a best checkpoint, the final policy); written even
    when W&B is disabled."""
    run = session.run
    if not run.logger.video:
        return None
    algo = session.algo  # the final policy (the final checkpoint synced it)
    if run.logger.video_which == "best":
        path, note = choose_checkpoint(session.run_dir, "best")
        if note is None and session.evaluation is not None:
            algo = session.evaluation.algo
            algo.load_state_dict(load_checkpoint(path)["algorithm"])
        else:
            log.info("video: %s", note or "no evaluation in this run; using the latest policy")
    try:
        result = evaluate_policy(algo, run.env, episodes=run.logger.video_episodes,
                                 video_path=session.run_dir / "eval.mp4", seed=run.seed)
    except UserError as exc:
        log.warning("no evaluation video: %s", exc)
        return None
    return result.video
