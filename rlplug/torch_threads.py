"""One torch intra-op thread in the main process while the workers use the cores.

torch's intra-op thread count is per process: a main process whose workers are threads (the
thread and serial executors), or that evaluates between two ticks while the workers act, uses one
intra-op thread meanwhile; more would oversubscribe the cores (pitfall 3).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the block with one torch intra-op thread; restore the previous count after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
