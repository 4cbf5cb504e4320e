"""rlplug installed without any algorithm, network or executor plugin: ``python -m rlplug`` says in
one line what to install.

The situation is real, not simulated: a fresh virtual environment (no system site-packages) whose
site-packages holds everything this test's environment has except the distributions that declare
``rlplug.algos``, ``rlplug.networks`` or ``rlplug.executors`` entry points (the A3C plugin and any
other), linked rather than copied so that it costs no download and no reinstall of torch.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

COMPONENT_GROUPS = ("rlplug.algos", "rlplug.networks", "rlplug.executors")
TIMEOUT_S = 300  # a hang guard only


def _component_distributions(site: Path) -> dict[str, set[str]]:
    """Name -> top-level entries in ``site`` of every distribution with a component plugin."""
    found: dict[str, set[str]] = {}
    for dist in metadata.distributions(path=[str(site)]):
        if dist.metadata["Name"] == "rlplug":
            continue
        if any(ep.group in COMPONENT_GROUPS for ep in dist.entry_points):
            found[dist.metadata["Name"]] = {Path(str(f)).parts[0] for f in dist.files or []}
    return found


@pytest.fixture(scope="module")
def bare_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a venv with rlplug and its dependencies, and no component plugin."""
    root = tmp_path_factory.mktemp("bare_env")
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(root / "venv")],
                   check=True, timeout=TIMEOUT_S)
    python = root / "venv" / "bin" / "python"
    target = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=TIMEOUT_S).stdout.strip())
    source = Path(sysconfig.get_paths()["purelib"])
    hidden = _component_distributions(source)
    assert "rlplug-a3c" in hidden, "the A3C plugin should be installed in the test environment"
    left_out = set().union(*hidden.values())
    for entry in source.iterdir():
        if entry.name not in left_out:
            (target / entry.name).symlink_to(entry)
    return python


def _run(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "PYTHONPATH")}
    return subprocess.run([str(python), "-m", "rlplug", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S)


def test_the_environment_has_rlplug_but_no_component_plugin(bare_env: Path, tmp_path) -> None:
    proc = _run(bare_env, "--list", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sections = proc.stdout.split("rlplug.")
    for group in ("algos:", "networks:", "executors:"):
        (section,) = [s for s in sections if s.startswith(group)]
        assert "(none installed)" in section, proc.stdout
    assert "rlplug-a3c" not in proc.stdout


@pytest.mark.parametrize("args", [[], ["total_steps=1000"], ["--help"]], ids=["bare", "key", "help"])
def test_without_plugins_the_cli_says_in_one_line_what_to_install(bare_env: Path, args, tmp_path,
                                                                  one_line_error) -> None:
    line = one_line_error(_run(bare_env, *args, cwd=tmp_path))
    assert "no algo, network or executor plugin is installed" in line, line
    assert "pip install rlplug-a3c" in line and "pip install -e plugins/a3c" in line, line
    assert not (tmp_path / "outputs").exists()
