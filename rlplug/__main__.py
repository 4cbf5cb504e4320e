"""``python -m rlplug [--list] [hydra overrides ...]``: train, or list the installed plugins."""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from rlplug.interrupts import quiet_interrupts, raise_on_signals, restore_signals
    except KeyboardInterrupt:
        print("rlplug: interrupted", file=sys.stderr)
        return 130
    # Until a run starts, Ctrl-C (or SIGTERM) ends the process at once with one line and 130
    # (143), and a summary.json if Hydra already made the run directory; once it has started,
    # the run stops cleanly and leaves its outputs, and whatever is left becomes one line.
    previous = raise_on_signals(until_a_run_starts=_summary_of_interrupted_start)
    try:
        with quiet_interrupts("rlplug", _summary_of_interrupted_start):
            return _main(sys.argv[1:])
    finally:
        restore_signals(previous)  # main() may be called in-process (tests)


def _main(argv: list[str]) -> int:
    from rlplug.errors import report_user_errors

    # Plugin discovery itself can fail on user input (two distributions claiming one name):
    # that, too, is a one-line error, also while importing the app (it registers config plugins).
    with report_user_errors("rlplug"):
        if argv[:1] in (["--list"], ["plugins"]):
            from rlplug.plugins import plugin_listing

            print(plugin_listing())
            return 0
        from rlplug.app import hydra_main
        from rlplug.cli import preflight

        parallel_sweep = preflight(argv)
    if parallel_sweep:
        from rlplug.interrupts import guard_parallel_sweep

        guard_parallel_sweep()
    hydra_main()
    return _sweep_exit_code()


def _sweep_exit_code() -> int:
    """After a parallel sweep that a signal stopped: one line, and 130 (SIGINT) or 143."""
    import signal

    from rlplug.interrupts import sweep_signal

    signum = sweep_signal()
    if signum is None:
        return 0
    print(f"rlplug: sweep stopped by {signal.Signals(signum).name}: the running jobs saved their "
          f"outputs, the queued ones did not start", file=sys.stderr)
    return 143 if signum == signal.SIGTERM else 130


def _summary_of_interrupted_start() -> str | None:
    """The run directory Hydra made for the interrupted job, given a summary.json if it has none
    (``train`` writes a fuller one when the signal lands inside it)."""
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig

    from rlplug.rundir import write_interrupted_summary

    if not HydraConfig.initialized():
        return None
    try:
        run_dir = Path(HydraConfig.get().runtime.output_dir)
    except Exception:  # noqa: BLE001 - no job directory yet (e.g. a multirun's parent)
        return None
    if not run_dir.is_dir():
        return None
    write_interrupted_summary(run_dir, "interrupted while starting, before any env step")
    return f"outputs in {run_dir}" if (run_dir / "summary.json").exists() else None


if __name__ == "__main__":
    sys.exit(main())
