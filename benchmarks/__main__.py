"""The benchmark suite: ``python -m benchmarks [throughput] [learning] [defaults] [ray]`` (default:
all four).

Writes benchmarks/results/{throughput,learning,tuned_defaults,ray_throughput}.{md,json} and
learning_curves.png;
the README's "Results" and "Scaling out" sections quote them. Run on an otherwise idle machine:
throughput is wall-clock.
"""

from __future__ import annotations

import platform
import sys
import time

import torch

from benchmarks import learning, ray_throughput, throughput, tuned_defaults
from benchmarks.common import write_results


def main(argv: list[str]) -> None:
    parts = argv or ["throughput", "learning", "defaults", "ray"]
    header = (f"_Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, "
              f"{torch.get_num_threads()} cores, torch {torch.__version__}._\n\n")
    if "throughput" in parts:
        random_sps = throughput.random_env_steps_per_s()
        rows = throughput.measure(random_sps)
        write_results("throughput", header + throughput.markdown(rows, random_sps),
                      {"random_env_steps_per_s": random_sps, "rows": rows})
    if "learning" in parts:
        rows = learning.measure()
        learning.plot(rows)
        write_results("learning", header + learning.markdown(rows), learning.without_curves(rows))
    if "defaults" in parts:
        rows = tuned_defaults.measure(list(tuned_defaults.TARGETS), list(tuned_defaults.SEEDS))
        write_results("tuned_defaults", tuned_defaults.header() + tuned_defaults.markdown(rows),
                      rows)
    if "ray" in parts:
        rows = ray_throughput.measure()
        write_results("ray_throughput", header + ray_throughput.markdown(rows),
                      {"rows": rows, "summary": ray_throughput.summarize(rows)})


if __name__ == "__main__":
    main(sys.argv[1:])
