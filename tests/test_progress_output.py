"""Progress output of ``python -m rlplug``: a live bar on a terminal; without one (a pipe, a CI
log, a batch job) a plain line every few seconds instead of carriage-return redraws.

Real runs, stderr on a pipe or on a pseudo-terminal. ``RLPLUG_PROGRESS_EVERY_S`` shortens the
interval between plain lines (5 s by default) so a short run shows several.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

TOTAL = 30_000
RUN = ["env=cartpole", "executor=thread", "executor.workers=1", "logger.mode=disabled",
       f"total_steps={TOTAL}", "checkpoint.every_steps=0"]
LINE = re.compile(r"^rlplug: ([\d,]+)/30,000 env steps \(([\d.]+)%\) \| episodes (\d+) \| "
                  r"R100 \S+ \|(?: [^|]+ \|)* ([\d,]+) steps/s \| \d+:\d\d:\d\d$")
HANG_GUARD_S = 300


def rlplug_env(every_s: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["RLPLUG_PROGRESS_EVERY_S"] = every_s
    return env


def test_without_a_terminal_progress_is_a_plain_line_every_few_seconds(tmp_path: Path):
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "rlplug", *RUN, f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=tmp_path, env=rlplug_env("0.5"), capture_output=True, text=True,
                          timeout=HANG_GUARD_S)
    elapsed = time.monotonic() - start

    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "\r" not in proc.stderr  # no redraws
    progress = [m for m in map(LINE.match, proc.stderr.splitlines()) if m]
    assert len(progress) >= 2, proc.stderr[-3000:]
    assert len(progress) <= elapsed / 0.5 + 2  # at most one line per interval (and the last)
    steps = [int(m.group(1).replace(",", "")) for m in progress]
    assert steps == sorted(steps) and steps[-1] == TOTAL
    assert progress[-1].group(2) == "100.0"
    assert int(progress[-1].group(3)) > 0  # episodes


def read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side of the terminal is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_on_a_terminal_progress_is_a_live_bar(tmp_path: Path):
    controller, terminal = pty.openpty()
    # a 120-column terminal (a new pseudo-terminal has 0 columns: the bar would be empty)
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "rlplug", *RUN,
                             f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path,
                            env=rlplug_env("0.5"), stdout=subprocess.DEVNULL, stderr=terminal)
    os.close(terminal)
    try:
        output = read_all(controller).decode("utf-8", "replace")
        assert proc.wait(timeout=HANG_GUARD_S) == 0, output[-3000:]
    finally:
        os.close(controller)
        if proc.poll() is None:
            proc.kill()

    assert "\r" in output and "rlplug:" in output  # tqdm redraws its bar in place
    assert re.search(r"30000/30000", output), output[-2000:]
    assert not any(LINE.match(line.strip("\r")) for line in output.splitlines())


def test_progress_false_prints_no_progress(tmp_path: Path):
    proc = subprocess.run([sys.executable, "-m", "rlplug", *RUN, "progress=false",
                           f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path,
                          env=rlplug_env("0.5"), capture_output=True, text=True,
                          timeout=HANG_GUARD_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "env steps (" not in proc.stderr and "\r" not in proc.stderr
