"""Shared fixtures of the core tests: the real CLI in a subprocess, and fake plugin distributions
written to a temporary directory (a ``*.dist-info`` folder plus modules), as pip would install."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CLI_TIMEOUT_S = 300  # a hang guard only


@dataclass
class FakeDistribution:
    """A distribution written by :func:`make_distribution`; ``root`` goes on sys.path/PYTHONPATH."""

    root: Path
    name: str
    version: str
    modules: list[str] = field(default_factory=list)


def _distribution_maker(base: Path, made: list[FakeDistribution]) -> Callable[..., FakeDistribution]:
    def make(name: str, version: str, entry_points: dict[str, dict[str, str]],
             files: dict[str, str] | None = None, root: Path | None = None) -> FakeDistribution:
        root = root or base / f"site-{uuid.uuid4().hex[:8]}"
        info = root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
        lines = []
        for group, entries in entry_points.items():
            lines.append(f"[{group}]")
            lines += [f"{key} = {target}" for key, target in entries.items()]
            lines.append("")
        (info / "entry_points.txt").write_text("\n".join(lines), encoding="utf-8")
        modules = []
        for rel, source in (files or {}).items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(source), encoding="utf-8")
            modules.append(rel.split("/")[0].removesuffix(".py"))
        dist = FakeDistribution(root, name, version, sorted(set(modules)))
        made.append(dist)
        return dist
    return make


def _forget_modules(made: list[FakeDistribution]) -> None:
    for dist in made:
        for module in list(sys.modules):
            if any(module == m or module.startswith(m + ".") for m in dist.modules):
                del sys.modules[module]


@pytest.fixture
def make_distribution(tmp_path: Path) -> Iterator[Callable[..., FakeDistribution]]:
    """``make_distribution(name, version, entry_points, files, root=None)`` writes
    ``<name>-<version>.dist-info/{METADATA,entry_points.txt}`` and ``files`` (relative path ->
    source) under ``root``. ``entry_points`` maps group -> {name: "module:attr"}.

    Modules imported from these distributions are removed from ``sys.modules`` afterwards.
    """
    made: list[FakeDistribution] = []
    yield _distribution_maker(tmp_path, made)
    _forget_modules(made)


@pytest.fixture(scope="module")
def make_module_distribution(
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., FakeDistribution]]:
    """:func:`make_distribution` for module-scoped fixtures: the distributions stay until the
    module's last test (e.g. one that a module-scoped run was trained with)."""
    made: list[FakeDistribution] = []
    yield _distribution_maker(tmp_path_factory.mktemp("dists"), made)
    _forget_modules(made)


@pytest.fixture
def run_rlplug(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_rlplug(*args, cwd=tmp_path, pythonpath=())``: ``python -m rlplug <args>`` in a
    subprocess (HYDRA_FULL_ERROR unset, so user errors print as one line)."""
    def run(*args: str, cwd: Path | None = None, pythonpath: tuple[Path, ...] = (),
            timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        env.pop("HYDRA_FULL_ERROR", None)
        env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), env.get("PYTHONPATH", "")])
        return subprocess.run([sys.executable, "-m", "rlplug", *args], cwd=cwd or tmp_path, env=env,
                              capture_output=True, text=True, timeout=timeout)
    return run


def stderr_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """The non-empty lines a process wrote to stderr."""
    return [line for line in proc.stderr.splitlines() if line.strip()]


@pytest.fixture
def one_line_error() -> Callable[[subprocess.CompletedProcess[str]], str]:
    """Assert the CLI failed with exit code 2 and exactly one ``rlplug: error:`` line on stderr
    (no traceback); return that line."""
    def check(proc: subprocess.CompletedProcess[str]) -> str:
        lines = stderr_lines(proc)
        assert proc.returncode == 2, f"exit code {proc.returncode}; stderr:\n{proc.stderr[-3000:]}"
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
        assert len(lines) == 1, f"expected one line on stderr, got:\n{proc.stderr[-3000:]}"
        assert lines[0].startswith("rlplug: error: "), lines[0]
        return lines[0]
    return check
