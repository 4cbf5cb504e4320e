"""One benchmark job: ``python -m benchmarks.job <hydra overrides>``; writes rusage.json (peak
RSS of this main process and of the largest worker process) into the run directory."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from rlplug.app import hydra_main


def _peak_rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    run_dir = next(a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("hydra.run.dir="))
    try:
        hydra_main()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    # workers were joined by the executor, so RUSAGE_CHILDREN covers them (max over children)
    Path(run_dir, "rusage.json").write_text(json.dumps({
        "peak_rss_main_mb": round(_peak_rss_mb(resource.RUSAGE_SELF), 1),
        "peak_rss_worker_mb": round(_peak_rss_mb(resource.RUSAGE_CHILDREN), 1)}))


if __name__ == "__main__":
    main()
