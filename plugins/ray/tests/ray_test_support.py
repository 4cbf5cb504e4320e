"""Helpers of the Ray executor's tests (imported by name: conftest puts this folder on sys.path)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlplug.config import RunConfig
from rlplug.outputs import read_metrics
from rlplug.run import RunResult, train


def rows_of(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    """The run's metrics rows of ``kind`` so far (read_metrics skips a partly written line)."""
    return [r for r in read_metrics(run_dir / "metrics.jsonl") if r.get("kind") == kind]


def wait_for(what: str, condition: Callable[[], Any], timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


class Background:
    """``train(run, run_dir)`` in a thread (its driver is this test process, so the test sees
    the run's named actors and can kill them)."""

    def __init__(self, run: RunConfig, run_dir: Path):
        self.run_dir = run_dir
        self.result: RunResult | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, args=(run,), daemon=True)
        self._thread.start()

    def _main(self, run: RunConfig) -> None:
        try:
            self.result = train(run, self.run_dir)
        except BaseException as exc:  # noqa: BLE001 - re-raised by join()
            self.error = exc

    def episodes(self) -> int:
        return len(rows_of(self.run_dir, "episode"))

    def join(self, timeout: float = 300.0) -> RunResult:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the run did not end within {timeout:g} s"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result
